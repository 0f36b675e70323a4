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


@pytest.mark.skipif(not CDK.exists(), reason="node_modules not installed (./dev install)")
def test_given_cdk_json_when_the_cli_synthesizes_then_it_writes_the_stack(tmp_path):
    # When: the app command from cdk.json, without building the asset (bundle=false), with
    # the region of the deployer's profile (the CLI hands it over as CDK_DEFAULT_REGION)
    environment = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "AWS_REGION": "eu-west-1"}
    environment.pop("CDK_DEFAULT_REGION", None)
    result = subprocess.run(
        [
            str(CDK),
            "synth",
            "--no-notices",
            "--quiet",
            "-c",
            "bundle=false",
            "--output",
            str(tmp_path),
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

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
