"""Deployment settings: `dev` and `prod`, chosen and tuned through CDK context.

    npx cdk deploy -c env=prod -c push:APNS=arn:aws:sns:...:app/APNS/messenger-ios

Every value has a default per environment; a context key overrides it. Context given on
the command line arrives as a string, in cdk.json as JSON, so numbers are parsed here.

Where to deploy (`Target`) is the account and region of the CLI's profile
(CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION), or `-c account=... -c region=...`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs

from infra.regions import AccountQuota, region_kind
from infra.throttling import Throttle, account_requests, stage_throttle
from messenger.contract import DEFAULT_MESSAGE_TTL_SECONDS
from messenger_protocol.names import PushPlatform

ENVIRONMENTS = ("dev", "prod")
# `-c push:APNS=<application ARN or SSM parameter name>`, one per platform in the contract.
PUSH_CONTEXT_PREFIX = "push:"
ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")


@dataclass(frozen=True)
class Target:
    """The account and region a stack deploys to. The region is always known at synth
    (what it offers is checked then); the account may be left to deploy time, unless
    something is looked up in it."""

    region: str
    account: str | None = None


def target_from(get: Callable[[str], Any], environ: Mapping[str, str]) -> Target:
    """Context `region`/`account`, else the CLI's CDK_DEFAULT_REGION/CDK_DEFAULT_ACCOUNT."""
    region = str(get("region") or environ.get("CDK_DEFAULT_REGION") or "")
    if not region:
        raise ValueError(
            "no region to deploy to: set one in your AWS profile (or AWS_REGION) for "
            "the CDK CLI, or pass -c region=REGION"
        )
    region_kind(region)  # refuses a region the stack does not support
    account = str(get("account") or environ.get("CDK_DEFAULT_ACCOUNT") or "") or None
    if account is not None and not ACCOUNT_PATTERN.match(account):
        raise ValueError(f"account must be 12 digits, got {account!r}")
    return Target(region=region, account=account)


@dataclass(frozen=True)
class DeploymentConfig:
    env: str
    # Tables and log groups: kept when the stack goes (prod) or gone with it (dev).
    removal_policy: RemovalPolicy
    deletion_protection: bool
    log_retention: logs.RetentionDays
    # The part of API Gateway's account quota (per region) this environment's stage and
    # the @connections posts its frames cause may use; see infra/throttling.py.
    account_share: float
    # Stage-wide throttling set by hand (frames/s, burst), instead of derived from the share.
    throttle_rate: int | None
    throttle_burst: int | None
    # The account's API Gateway throttle quota if AWS raised it (Service Quotas
    # L-8A5B8E43); None: the region's default (infra/regions.py).
    account_quota: AccountQuota | None
    memory_mb: int
    timeout: Duration
    # Lambda SnapStart: cold starts restore a snapshot taken after the imports instead of
    # importing. Billed per GB cached and restored, so on in prod and off in dev.
    snap_start: bool
    message_ttl_seconds: int
    # The name of the cell's generation in every syncDone (PROTOCOL.md §7); None: the
    # functions name it after their region. A failover to a standby sets a new one.
    cell_epoch: str | None
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

    def quota_in(self, region: str) -> AccountQuota:
        return self.account_quota or region_kind(region).quota

    def stage_throttle(self, region: str) -> Throttle:
        """The stage throttle in `region`: set by hand, or this env's share of the quota.

        Refuses a hand-set throttle whose frames and posts the account cannot carry.
        """
        quota = self.quota_in(region)
        derived = stage_throttle(quota, self.account_share)
        throttle = Throttle(
            rate=self.throttle_rate or derived.rate, burst=self.throttle_burst or derived.burst
        )
        rate, burst = account_requests(throttle)
        if rate > quota.rate or burst > quota.burst:
            whole = stage_throttle(quota, 1.0)
            raise ValueError(
                f"a stage throttle of {throttle.rate}/s (burst {throttle.burst}) and the "
                f"@connections posts it lets through need {rate:.0f}/s (burst {burst:.0f}) "
                f"of API Gateway's account quota in {region}, {quota.rate}/s (burst "
                f"{quota.burst}): at most {whole.rate}/s (burst {whole.burst}), or raise the "
                "quota and say so with -c accountQuotaRate=... -c accountQuotaBurst=..."
            )
        return throttle


_BASE = DeploymentConfig(
    env="dev",
    removal_policy=RemovalPolicy.DESTROY,
    deletion_protection=False,
    log_retention=logs.RetentionDays.ONE_WEEK,
    # 5% of the account quota: 300 frames/s (burst 150) where it is 10,000/s.
    account_share=0.05,
    throttle_rate=None,
    throttle_burst=None,
    account_quota=None,
    memory_mb=512,
    # API Gateway gives up on an integration after 29 s; a function running longer helps
    # no one. The SDK clients' own timeouts (functions/messenger/wiring.py) fit inside.
    timeout=Duration.seconds(29),
    snap_start=False,
    message_ttl_seconds=DEFAULT_MESSAGE_TTL_SECONDS,
    cell_epoch=None,
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
        # 90% of the account quota (5,400 frames/s, burst 2,700 where it is 10,000/s):
        # with dev's 5%, both fit in one account, and 5% is left for anything else.
        account_share=0.9,
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
        "throttleRate": ("throttle_rate", int),
        "throttleBurst": ("throttle_burst", int),
        "memoryMb": ("memory_mb", int),
        "messageTtlSeconds": ("message_ttl_seconds", int),
        "cellEpoch": ("cell_epoch", str),
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
    quota_rate, quota_burst = get("accountQuotaRate"), get("accountQuotaBurst")
    if quota_rate or quota_burst:
        if not (quota_rate and quota_burst):
            raise ValueError("accountQuotaRate and accountQuotaBurst go together")
        overrides["account_quota"] = AccountQuota(rate=int(quota_rate), burst=int(quota_burst))
    return replace(config, **overrides)
