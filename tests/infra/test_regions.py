"""Regions: what the stack refuses at synth time, and cfn-lint in every supported region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from infra.app import build_app
from tests.infra.conftest import ACCOUNT, NO_BUNDLING, synthesized_once

pytestmark = pytest.mark.infra

# Lambda: SnapStart is offered in every commercial region but Asia Pacific (Taipei) and
# Asia Pacific (New Zealand). SNS: no mobile push in Europe (Zurich), for one.
NO_SNAPSTART = "ap-east-2"
NO_MOBILE_PUSH = "eu-central-2"
# CDK makes a function depend on its role explicitly although it also references it.
CFN_LINT_ACCEPTED_WARNINGS = {"W3005"}


def synth(tmp_path: Path, **context: Any) -> None:
    build_app({**NO_BUNDLING, "account": ACCOUNT, **context}, outdir=str(tmp_path)).synth()


def test_given_snapstart_in_a_region_that_has_none_then_synthesis_refuses(tmp_path):
    with pytest.raises(ValueError, match=f"SnapStart.*{NO_SNAPSTART}"):
        synth(tmp_path, env="prod", region=NO_SNAPSTART)


def test_given_a_push_application_in_another_region_then_synthesis_refuses(tmp_path):
    with pytest.raises(ValueError, match=r"in us-east-1, but the stack deploys to eu-west-1"):
        synth(
            tmp_path,
            env="dev",
            region="eu-west-1",
            **{"push:APNS": f"arn:aws:sns:us-east-1:{ACCOUNT}:app/APNS/messenger-ios"},
        )


def test_given_push_in_a_region_without_sns_mobile_push_then_synthesis_refuses(tmp_path):
    with pytest.raises(ValueError, match=f"mobile push.*{NO_MOBILE_PUSH}"):
        synth(
            tmp_path,
            env="dev",
            region=NO_MOBILE_PUSH,
            **{"push:APNS": f"arn:aws:sns:{NO_MOBILE_PUSH}:{ACCOUNT}:app/APNS/ios"},
        )


def test_given_a_region_the_stack_does_not_support_then_synthesis_refuses(tmp_path):
    with pytest.raises(ValueError, match="cn-north-1"):
        synth(tmp_path, env="dev", region="cn-north-1")


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_given_every_supported_region_then_cfn_lint_finds_no_error(env, tmp_path_factory):
    # One synthesis per kind of region (SnapStart or not, account quota), linted for every
    # region of that kind: the templates of one kind differ in region names only.
    from infra.regions import SUPPORTED_REGIONS, region_kinds

    linted: list[str] = []
    for kind, regions in region_kinds().items():
        context: dict[str, Any] = {"env": env, "region": regions[0], "account": ACCOUNT}
        if env == "prod" and not kind.snap_start:
            context["snapStart"] = "false"
        # (dev in us-east-1 is the `dev` fixture's: synthesized once for both)
        synthesized = synthesized_once(context, tmp_path_factory)
        for template in synthesized.outdir.glob("*.template.json"):
            matches = lint_file(template, config=ManualArgs(regions=list(regions)))
            problems = [
                (match.rule.id, match.message)
                for match in matches
                if match.rule.id not in CFN_LINT_ACCEPTED_WARNINGS
            ]
            assert problems == [], (template.name, regions)
        linted += regions
    assert sorted(linted) == sorted(SUPPORTED_REGIONS)
