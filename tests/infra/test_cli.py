"""`cdk synth` through the CDK CLI from npm, as a deployer runs it from a fresh clone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"


def cdk_synth(outdir: Path, *context: str) -> subprocess.CompletedProcess[str]:
    """The app command from cdk.json, without building the asset (bundle=false), with the
    region of the deployer's profile (the CLI hands it over as CDK_DEFAULT_REGION)."""
    environment = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "AWS_REGION": "eu-west-1"}
    environment.pop("CDK_DEFAULT_REGION", None)
    arguments = [argument for value in ("bundle=false", *context) for argument in ("-c", value)]
    return subprocess.run(
        [str(CDK), "synth", "--no-notices", "--quiet", *arguments, "--output", str(outdir)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not CDK.exists(), reason="node_modules not installed (./dev install)")
def test_given_cdk_json_when_the_cli_synthesizes_then_it_writes_the_stack(tmp_path):
    # When
    result = cdk_synth(tmp_path)

    # Then it succeeds, cdk-nag included, and the dev stack is in the cloud assembly, for
    # that region, after the region's logging-role stack
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((tmp_path / "Messenger-dev.template.json").read_text())
    assert any(
        resource["Type"] == "AWS::ApiGatewayV2::Api" for resource in template["Resources"].values()
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stack = manifest["artifacts"]["Messenger-dev"]
    assert stack["environment"].endswith("/eu-west-1")
    assert any(name.startswith("ApiGatewayLogging") for name in stack["dependencies"])
    # And cdk.json leaves no feature flag unconfigured
    assert "feature flags are not configured" not in result.stderr


@pytest.mark.skipif(not CDK.exists(), reason="node_modules not installed (./dev install)")
def test_given_cells_when_the_cli_synthesizes_then_each_cell_and_the_directory_are_stacks(
    tmp_path,
):
    # When: the README's command for two cells
    result = cdk_synth(
        tmp_path,
        "cells=c0:111111111111/us-east-1,c1:222222222222/eu-west-1",
        "organization=o-a1b2c3d4e5",
    )

    # Then each cell is a stack of its account and region, after the directory's
    assert result.returncode == 0, result.stderr[-4000:]
    artifacts = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert artifacts["Messenger-dev-Directory"]["environment"] == "aws://111111111111/us-east-1"
    for cell, where in (("c0", "111111111111/us-east-1"), ("c1", "222222222222/eu-west-1")):
        stack = artifacts[f"Messenger-dev-{cell}"]
        assert stack["environment"] == f"aws://{where}"
        assert "Messenger-dev-Directory" in stack["dependencies"]
    assert "Messenger-dev" not in artifacts
