"""Deployment settings: `dev` and `prod`, chosen and tuned through CDK context.

    npx cdk deploy -c env=prod -c push:APNS=arn:aws:sns:...:app/APNS/messenger-ios

Every value has a default per environment; a context key overrides it. Context given on
the command line arrives as a string, in cdk.json as JSON, so numbers are parsed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs

from messenger.contract import DEFAULT_MESSAGE_TTL_SECONDS, DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR
from messenger_protocol.names import PushPlatform

ENVIRONMENTS = ("dev", "prod")
# `-c push:APNS=<application ARN or SSM parameter name>`, one per platform in the contract.
PUSH_CONTEXT_PREFIX = "push:"


@dataclass(frozen=True)
class DeploymentConfig:
    env: str
    # Tables and log groups: kept when the stack goes (prod) or gone with it (dev).
    removal_policy: RemovalPolicy
    deletion_protection: bool
    log_retention: logs.RetentionDays
    # Stage-wide API Gateway throttling: steady messages per second and the burst above it.
    throttle_rate: float
    throttle_burst: int
    memory_mb: int
    timeout: Duration
    # Lambda SnapStart: cold starts restore a snapshot taken after the imports instead of
    # importing. Billed per GB cached and restored, so on in prod and off in dev.
    snap_start: bool
    message_ttl_seconds: int
    # New users one source address (IPv6: one /64) may register per hour.
    registrations_per_ip_per_hour: int
    # Platform ("APNS", "APNS_SANDBOX", "GCM") -> platform application ARN, or the name
    # of an SSM String parameter that holds it (read at deploy time).
    push_apps: Mapping[str, str]
    alarm_email: str | None
    # API Gateway needs an account-wide CloudWatch role before a WebSocket stage may log.
    # Off when the account already has one that someone else manages.
    api_gateway_logs_role: bool

    @property
    def stack_name(self) -> str:
        return f"Messenger-{self.env}"


_BASE = DeploymentConfig(
    env="dev",
    removal_policy=RemovalPolicy.DESTROY,
    deletion_protection=False,
    log_retention=logs.RetentionDays.ONE_WEEK,
    throttle_rate=100,
    throttle_burst=200,
    memory_mb=512,
    # API Gateway gives up on an integration after 29 s; a function running longer helps
    # no one. The SDK clients' own timeouts (functions/messenger/wiring.py) fit inside.
    timeout=Duration.seconds(29),
    snap_start=False,
    message_ttl_seconds=DEFAULT_MESSAGE_TTL_SECONDS,
    registrations_per_ip_per_hour=DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR,
    push_apps={},
    alarm_email=None,
    api_gateway_logs_role=True,
)

DEFAULTS = {
    "dev": _BASE,
    "prod": replace(
        _BASE,
        env="prod",
        removal_policy=RemovalPolicy.RETAIN,
        deletion_protection=True,
        log_retention=logs.RetentionDays.ONE_MONTH,
        # API Gateway's default account quota; ask AWS for more before going past it.
        throttle_rate=10_000,
        throttle_burst=5_000,
        snap_start=True,
    ),
}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _push_source(platform: str, value: Any) -> str:
    text = str(value).strip()
    if not (text.startswith("arn:") or text.startswith("/")):
        raise ValueError(
            f"{PUSH_CONTEXT_PREFIX}{platform} must be a platform application ARN (arn:...) "
            f"or an SSM parameter name (/...), got {text!r}"
        )
    return text


def config_from_context(get: Callable[[str], Any]) -> DeploymentConfig:
    """The settings of the environment named by context `env` (default dev).

    `get` is `node.try_get_context`: it answers None for keys that are not set.
    """
    env = str(get("env") or "dev")
    if env not in DEFAULTS:
        raise ValueError(f"context env must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    config = DEFAULTS[env]
    overrides: dict[str, Any] = {}
    parsers: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "throttleRate": ("throttle_rate", float),
        "throttleBurst": ("throttle_burst", int),
        "memoryMb": ("memory_mb", int),
        "messageTtlSeconds": ("message_ttl_seconds", int),
        "registrationsPerIpPerHour": ("registrations_per_ip_per_hour", int),
        "alarmEmail": ("alarm_email", str),
        "apiGatewayLogsRole": ("api_gateway_logs_role", _flag),
        "snapStart": ("snap_start", _flag),
    }
    for key, (attribute, parse) in parsers.items():
        value = get(key)
        if value is not None and value != "":
            overrides[attribute] = parse(value)
    push_apps = {
        platform: _push_source(platform, value)
        for platform in PushPlatform
        if (value := get(PUSH_CONTEXT_PREFIX + platform))
    }
    if push_apps:
        overrides["push_apps"] = push_apps
    return replace(config, **overrides)
