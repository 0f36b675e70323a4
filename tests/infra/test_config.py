"""Deployment settings from CDK context (no synthesis)."""

from __future__ import annotations

import pytest
from aws_cdk import RemovalPolicy

from infra.config import config_from_context

pytestmark = pytest.mark.infra


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
            registrationsPerIpPerHour="5",
            apiGatewayLogsRole="false",
            alarmEmail="ops@example.com",
        )
    )
    assert (config.throttle_rate, config.throttle_burst) == (2500.0, 1000)
    assert config.message_ttl_seconds == 86400
    assert config.registrations_per_ip_per_hour == 5
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
