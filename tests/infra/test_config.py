"""Deployment settings from CDK context (no synthesis)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import aws_cdk
import pytest
from aws_cdk import RemovalPolicy

from infra.config import Target, config_from_context, target_from

pytestmark = pytest.mark.infra

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def context(**values):
    return lambda key: values.get(key)


def test_given_no_context_then_it_is_dev():
    config = config_from_context(context())
    assert config.env == "dev"
    assert config.stack_name == "Messenger-dev"
    assert config.removal_policy == RemovalPolicy.DESTROY
    assert config.push_apps == {}


def test_given_prod_then_data_is_kept_and_protected():
    config = config_from_context(context(env="prod"))
    assert config.removal_policy == RemovalPolicy.RETAIN
    assert config.deletion_protection is True


def test_given_prod_then_snap_start_is_on_unless_turned_off():
    assert config_from_context(context(env="prod")).snap_start is True
    assert config_from_context(context(env="prod", snapStart="false")).snap_start is False
    assert config_from_context(context()).snap_start is False
    assert config_from_context(context(snapStart=True)).snap_start is True


def test_given_command_line_strings_then_numbers_and_flags_are_parsed():
    config = config_from_context(
        context(
            env="prod",
            throttleRate="2500",
            throttleBurst="1000",
            messageTtlSeconds="86400",
            cellEpoch="eu-west-1-2",
            apiGatewayLogsRole="false",
            alarmEmail="ops@example.com",
        )
    )
    assert (config.throttle_rate, config.throttle_burst) == (2500, 1000)
    assert config.message_ttl_seconds == 86400
    assert config.cell_epoch == "eu-west-1-2"
    assert config_from_context(context()).cell_epoch is None
    assert config.api_gateway_logs_role is False
    assert config.alarm_email == "ops@example.com"


def test_given_push_platforms_then_arns_and_ssm_names_are_taken_per_platform():
    config = config_from_context(
        context(
            **{
                "push:APNS": "arn:aws:sns:eu-west-1:123456789012:app/APNS/ios",
                "push:GCM": "/messenger/push/gcm",
            }
        )
    )
    assert config.push_apps == {
        "APNS": "arn:aws:sns:eu-west-1:123456789012:app/APNS/ios",
        "GCM": "/messenger/push/gcm",
    }


@pytest.mark.parametrize(
    "bad", [{"env": "staging"}, {"push:APNS": "messenger-ios"}, {"apiGatewayLogsRole": "maybe"}]
)
def test_given_a_wrong_value_then_synthesis_stops_with_a_clear_error(bad):
    with pytest.raises(ValueError):
        config_from_context(context(**bad))


def recommended_feature_flags() -> dict[str, object]:
    """What `cdk init` writes for the installed aws-cdk-lib (its recommended-feature-flags.json)."""
    package = Path(aws_cdk.__file__).parent / "_jsii"
    (tarball,) = package.glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, object] = json.load(member)
    return flags


def test_given_cdk_json_then_it_sets_every_recommended_feature_flag():
    context = json.loads(CDK_JSON.read_text())["context"]
    recommended = recommended_feature_flags()
    assert len(recommended) > 50
    assert {flag: context.get(flag) for flag in recommended} == recommended


def test_given_no_region_anywhere_then_synthesis_stops_and_says_where_to_set_one():
    with pytest.raises(ValueError, match="-c region=REGION"):
        target_from(context(), {})


def test_given_the_clis_profile_then_its_account_and_region_are_the_target():
    environ = {"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "111111111111"}
    assert target_from(context(), environ) == Target(region="eu-west-1", account="111111111111")
    # Context wins over the profile
    assert target_from(context(region="us-east-2"), environ).region == "us-east-2"
    # The account may be left to deploy time
    assert target_from(context(region="us-east-2"), {}) == Target(region="us-east-2")


def test_given_a_hand_set_throttle_the_account_cannot_carry_then_synthesis_stops():
    config = config_from_context(context(env="prod", throttleRate="10000", throttleBurst="5000"))
    with pytest.raises(ValueError, match="at most 6000/s"):
        config.stage_throttle("us-east-1")
    # Where the quota was raised, say so, and it fits
    raised = config_from_context(
        context(
            env="prod",
            throttleRate="10000",
            throttleBurst="5000",
            accountQuotaRate="20000",
            accountQuotaBurst="10000",
        )
    )
    assert raised.stage_throttle("us-east-1").rate == 10_000


def test_given_a_region_with_the_smaller_quota_then_the_stage_throttle_follows_it():
    prod = config_from_context(context(env="prod"))
    assert prod.stage_throttle("us-east-1").rate == 5_400
    assert prod.stage_throttle("eu-central-2").rate == 1_350
