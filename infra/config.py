"""Deployment settings: `dev` and `prod`, chosen and tuned through CDK context.

    npx cdk deploy -c env=prod -c push:APNS=arn:aws:sns:...:app/APNS/messenger-ios

Every value has a default per environment; a context key overrides it. Context given on
the command line arrives as a string, in cdk.json as JSON, so numbers are parsed here.

Every deployment is a set of cells (docs/protocol.md §6, `CellsConfig`). Named with
`-c cells`, each cell has its own account and region, and a directory tells clients
where each user's home cell is:

    npx cdk deploy --all -c cells=c0:111111111111/us-east-1,c1:222222222222/eu-west-1

and a cell may have a standby in another region of its own account (docs/protocol.md §7,
docs/availability.md): `-c standby:c1=222222222222/eu-central-1`, neither side in the
directory's region (the first cell's), in no account and region another side runs in, and
with the tables' names if they were created unnamed (`-c tableNames:c1=...`). Without `-c cells` the
deployment is one cell, `c0`, without peers and without a directory (its clients are
given its URL), where the CLI's profile points (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION)
or `-c account=... -c region=...` say (`Target`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs

from infra.regions import AccountQuota, region_kind
from infra.throttling import Throttle, account_requests, stage_throttle
from messenger.contract import (
    DEFAULT_MESSAGE_TTL_SECONDS,
    DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR,
    STANDBY_SUFFIX,
    TABLES,
)
from messenger_protocol.cells import (
    DEFAULT_SHARDS,
    InvalidDirectory,
    ShardMap,
    ShardRange,
    is_cell_id,
)
from messenger_protocol.connect import canonical_endpoint
from messenger_protocol.names import PushPlatform

ENVIRONMENTS = ("dev", "prod")
# `-c push:APNS=<application ARN or SSM parameter name>`, one per platform in the contract.
PUSH_CONTEXT_PREFIX = "push:"
ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")
# `-c cells=c0:111111111111/us-east-1,c1:...`, `-c shards=4096`, `-c shardMap=c0:0-2047,...`
CELLS_CONTEXT = "cells"
SHARDS_CONTEXT = "shards"
SHARD_MAP_CONTEXT = "shardMap"
# The AWS Organization every cell's account is in: what a cell's Relay and the directory's
# bucket admit when the cells span accounts (one statement for the whole deployment,
# whatever the number of cells: docs/scale.md "The mesh").
ORGANIZATION_CONTEXT = "organization"
# `-c directoryKey=<the directory stack's output DirectoryPublicKey>`: what the cells of a
# deployment of several believe their shard map by (they read it from the signed
# directory, never from their environment: docs/scale.md "The mesh"). Unset, their
# functions refuse to serve (fail closed) until a deploy gives it.
DIRECTORY_KEY_CONTEXT = "directoryKey"
_DIRECTORY_KEY = re.compile(r"[A-Za-z0-9_-]{43}")
_ORGANIZATION_ID = re.compile(r"o-[a-z0-9]{10,32}")
# `-c standby:c1=222222222222/eu-central-1`: the cell's standby region (its own account).
STANDBY_CONTEXT_PREFIX = "standby:"
# `-c directorySecondRegion=us-west-2 -c directoryWitness=us-east-2`: the directory in two
# regions of its account (docs/availability.md, "The directory in two regions"), its
# versions table a DynamoDB global table with multi-Region strong consistency (MRSC): two
# replicas and a witness, all three in one of MRSC's region sets.
DIRECTORY_SECOND_REGION_CONTEXT = "directorySecondRegion"
DIRECTORY_WITNESS_CONTEXT = "directoryWitness"
MRSC_REGION_SETS = (
    frozenset({"us-east-1", "us-east-2", "us-west-2"}),
    frozenset({"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"}),
    frozenset({"ap-northeast-1", "ap-northeast-2", "ap-northeast-3"}),
)
# `-c tableNames:c0=Users=...,Queue=...,Limits=...` (or `=generated`): c0's tables were
# created before every table was named, and keep the names CloudFormation gave them.
TABLE_NAMES_CONTEXT_PREFIX = "tableNames:"
GENERATED_TABLE_NAMES = "generated"
# DynamoDB's rule for a table's name.
TABLE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# The retentions the environments use, in days: for logs kept in S3 (the directory's).
RETENTION_DAYS = {logs.RetentionDays.ONE_WEEK: 7, logs.RetentionDays.ONE_MONTH: 30}
# The directory's stack is `Messenger-<env>-Directory`: no cell may take that name.
RESERVED_CELL_IDS = frozenset({"directory"})
# The one cell of a deployment without `-c cells`: the first cell's id, as in the README.
SINGLE_CELL_ID = "c0"
# Where the single cell deploys when no environment is given: context alone says.
NO_ENVIRONMENT: Mapping[str, str] = MappingProxyType({})


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
    # New users one source address (IPv6: one /64) may register per hour.
    registrations_per_ip_per_hour: int
    # The name of the cell's generation in every syncDone (docs/protocol.md §7); None: the
    # functions name it after their region. A failover to a standby sets a new one.
    cell_epoch: str | None
    # Platform ("APNS", "APNS_SANDBOX", "GCM") -> platform application ARN, or the name
    # of an SSM String parameter that holds it (read at deploy time).
    push_apps: Mapping[str, str]
    alarm_email: str | None
    # API Gateway needs an account-wide CloudWatch role before a WebSocket stage may log.
    # Off when the account already has one that someone else manages.
    api_gateway_logs_role: bool
    # `-c autoFailover=true`: each standby switches its cell over by itself when its probe
    # finds the primary unreachable (infra/failover_automation.py). Off: a failover loses
    # the last seconds of writes, and an operator may prefer to decide.
    auto_failover: bool = False
    # `-c acceptV11Connect=false`: every handshake must be signed for the endpoint it
    # reaches (`aud`, docs/protocol.md §1); on, the v1.1 connect signature still works.
    accept_v11_connect: bool = True
    # `-c connectEndpoints=wss://chat.example.com,...`: URLs the cell is also reached at (a
    # custom domain), besides its execute-api URL that API Gateway names in every event.
    connect_endpoints: tuple[str, ...] = ()

    @property
    def stack_name(self) -> str:
        """The single-cell stack; a cell's stack and the directory's are named after it."""
        return f"Messenger-{self.env}"

    @property
    def log_retention_days(self) -> int:
        return RETENTION_DAYS[self.log_retention]

    def cell_stack_name(self, cell_id: str) -> str:
        return f"{self.stack_name}-{cell_id}"

    def standby_stack_name(self, cell_id: str) -> str:
        return f"{self.cell_stack_name(cell_id)}-standby"

    @property
    def directory_stack_name(self) -> str:
        return f"{self.stack_name}-Directory"

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
    registrations_per_ip_per_hour=DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR,
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


def _endpoints(value: Any) -> tuple[str, ...]:
    """A comma-separated list of ws(s):// URLs, each in its canonical form (`aud`)."""
    return tuple(canonical_endpoint(url.strip()) for url in str(value).split(",") if url.strip())


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
        "registrationsPerIpPerHour": ("registrations_per_ip_per_hour", int),
        "cellEpoch": ("cell_epoch", str),
        "alarmEmail": ("alarm_email", str),
        "apiGatewayLogsRole": ("api_gateway_logs_role", _flag),
        "snapStart": ("snap_start", _flag),
        "autoFailover": ("auto_failover", _flag),
        "acceptV11Connect": ("accept_v11_connect", _flag),
        "connectEndpoints": ("connect_endpoints", _endpoints),
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


# --- Cells ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UnnamedTables:
    """A cell's tables that CloudFormation named, and those names if the operator gave them.

    `TableName` is create-only: naming a table that was created without one replaces it
    with an empty one. So such a cell keeps its tables unnamed in its template; a standby,
    which finds the replicas by name, needs their physical names (the stack's outputs
    `UsersTableName`, ... say them; docs/infra.md "Tables created unnamed").
    """

    # (logical name, physical name) of every contract table; empty: not given.
    names: tuple[tuple[str, str], ...] = ()

    def name_of(self, logical_name: str) -> str | None:
        return dict(self.names).get(logical_name)


@dataclass(frozen=True)
class Cell:
    """One cell: a complete messenger stack in one account and region (docs/protocol.md §6)."""

    cell_id: str
    # Always with an account: peers name this cell's Relay by its ARN at synth time.
    target: Target
    # The standby region's stack (same account), None without one (docs/protocol.md §7).
    standby: Target | None = None
    # Tables created before every table was named (`-c tableNames:<cell>=...`): their
    # templates leave `TableName` out, as they always did, and CloudFormation keeps the
    # names it gave them. None: the app names them (infra/cells.py), the default.
    unnamed_tables: UnnamedTables | None = None

    @property
    def account(self) -> str:
        assert self.target.account is not None
        return self.target.account

    @property
    def region(self) -> str:
        return self.target.region


@dataclass(frozen=True)
class CellsConfig:
    """The cells of one deployment and the shard map that gives every user one home."""

    cells: tuple[Cell, ...]
    shard_map: ShardMap
    # Cells named with `-c cells` are each a stack of its own, `Messenger-<env>-<cell>`,
    # and publish their URLs in the directory. Without, the deployment is one cell in the
    # stack `Messenger-<env>` (as it always was), and its clients are given its URL.
    has_directory: bool = True
    # The AWS Organization of the cells' accounts (`-c organization=o-...`): required when
    # they are more than one account, since nothing per account or per cell is admitted.
    organization: str | None = None
    # The directory's second region and its versions table's witness (both or neither).
    directory_second_region: str | None = None
    directory_witness: str | None = None
    # The directory key's public half (base64url), given once the directory's stack has
    # made it (`-c directoryKey`): None before.
    directory_key: str | None = None

    @property
    def directory_regions(self) -> tuple[str, ...]:
        """The regions the directory's buckets are in: the first cell's, then the second."""
        second = (self.directory_second_region,) if self.directory_second_region else ()
        return (self.directory_target.region, *second)

    @property
    def accounts(self) -> frozenset[str]:
        return frozenset(cell.account for cell in self.cells)

    @property
    def directory_target(self) -> Target:
        """Where the directory lives: the first cell's account and region."""
        return self.cells[0].target

    @property
    def api_regions(self) -> tuple[str, ...]:
        """Every region a WebSocket API of the deployment runs in: the cells' and their
        standbys', each once, in the order of the cells."""
        regions = [
            region
            for cell in self.cells
            for region in (cell.region, cell.standby.region if cell.standby else None)
            if region is not None
        ]
        return tuple(dict.fromkeys(regions))

    def peers_of(self, cell_id: str) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.cells if cell.cell_id != cell_id)


def _cell(entry: str) -> Cell:
    cell_id, _, place = entry.strip().partition(":")
    account, _, region = place.partition("/")
    if not (cell_id and account and region):
        raise ValueError(
            f"cells entry {entry!r} is not <cell>:<account>/<region>, "
            "e.g. c0:111111111111/us-east-1"
        )
    # A cell id ending like a standby's names would name another cell's standby tables.
    if not is_cell_id(cell_id) or cell_id in RESERVED_CELL_IDS or cell_id.endswith(STANDBY_SUFFIX):
        raise ValueError(
            f"cells: {cell_id!r} is not a cell id (lowercase letters, digits and '-', "
            f"up to 32, starting with a letter or digit, not ending {STANDBY_SUFFIX!r}; "
            f"not {', '.join(RESERVED_CELL_IDS)})"
        )
    if not ACCOUNT_PATTERN.match(account):
        raise ValueError(f"cells: the account of {cell_id} must be 12 digits, got {account!r}")
    region_kind(region)  # refuses a region the stack does not support
    return Cell(cell_id, Target(region=region, account=account))


def _standby(cell: Cell, value: Any) -> Target:
    """`ACCOUNT/REGION` of a cell's standby: another region of the cell's own account."""
    key = f"{STANDBY_CONTEXT_PREFIX}{cell.cell_id}"
    account, _, region = str(value).strip().partition("/")
    if not (ACCOUNT_PATTERN.match(account) and region):
        raise ValueError(f"{key} must be <account>/<region>, e.g. {cell.account}/us-west-2")
    if account != cell.account:
        raise ValueError(
            f"{key}: the standby must be in the cell's own account ({cell.account}), not "
            f"{account}: its tables are the cell's tables' replicas (DynamoDB global tables), "
            "and CDK's TableV2 makes replicas in its own account only"
        )
    if region == cell.region:
        raise ValueError(f"{key}: the standby must be in another region than {cell.region}")
    region_kind(region)
    return Target(region=region, account=account)


def _unnamed_tables(get: Callable[[str], Any], cell_id: str) -> UnnamedTables | None:
    """`-c tableNames:<cell>=generated`, or `=Users=<name>,Queue=<name>,...` naming them all."""
    key = f"{TABLE_NAMES_CONTEXT_PREFIX}{cell_id}"
    value = get(key)
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text == GENERATED_TABLE_NAMES:
        return UnnamedTables()
    names: dict[str, str] = {}
    for entry in text.split(","):
        logical_name, _, name = entry.strip().partition("=")
        if not TABLE_NAME_PATTERN.match(name):
            raise ValueError(
                f"{key} entry {entry!r} is not <table>=<name> with a DynamoDB table name, "
                "e.g. Users=Messenger-dev-Users0A0EEA89-1A2B3C4D5E6F"
            )
        names[logical_name] = name
    expected = [spec.logical_name for spec in TABLES]
    if sorted(names) != sorted(expected):
        raise ValueError(
            f"{key} must name each of the cell's tables once ({', '.join(expected)}), "
            f"or be {GENERATED_TABLE_NAMES!r}; got {', '.join(names) or 'none'}"
        )
    return UnnamedTables(names=tuple((name, names[name]) for name in expected))


def _with_standby(get: Callable[[str], Any], cell: Cell) -> Cell:
    """The cell with its standby and its tables' names, as context gives them."""
    unnamed = _unnamed_tables(get, cell.cell_id)
    standby = get(f"{STANDBY_CONTEXT_PREFIX}{cell.cell_id}")
    if not standby:
        return replace(cell, unnamed_tables=unnamed)
    if unnamed is not None and not unnamed.names:
        key = f"{TABLE_NAMES_CONTEXT_PREFIX}{cell.cell_id}"
        raise ValueError(
            f"{STANDBY_CONTEXT_PREFIX}{cell.cell_id}: {cell.cell_id}'s tables were created "
            f"unnamed ({key}={GENERATED_TABLE_NAMES}), and its standby finds their replicas "
            f"by name: give their names instead, -c {key}=Users=...,Queue=...,Limits=... "
            f"(the outputs UsersTableName, QueueTableName and LimitsTableName of "
            f'{cell.cell_id}\'s stack; docs/infra.md, "Tables created unnamed")'
        )
    return replace(cell, standby=_standby(cell, standby), unnamed_tables=unnamed)


def _directory_regions(get: Callable[[str], Any], first: str) -> tuple[str | None, str | None]:
    """The directory's second region and witness, checked (docs/availability.md)."""
    second = str(get(DIRECTORY_SECOND_REGION_CONTEXT) or "").strip() or None
    witness = str(get(DIRECTORY_WITNESS_CONTEXT) or "").strip() or None
    if second is None and witness is None:
        return None, None
    if second is None or witness is None:
        raise ValueError(
            f"{DIRECTORY_SECOND_REGION_CONTEXT} and {DIRECTORY_WITNESS_CONTEXT} go together: "
            "the directory's versions table is a global table with multi-Region strong "
            "consistency, which needs two replicas and a witness (or three replicas)"
        )
    if len({first, second, witness}) < 3:
        raise ValueError(
            f"{DIRECTORY_SECOND_REGION_CONTEXT}={second} and {DIRECTORY_WITNESS_CONTEXT}="
            f"{witness} must be two regions other than the directory's first, {first}"
        )
    region_kind(second)
    if not any({first, second, witness} <= regions for regions in MRSC_REGION_SETS):
        sets = "; ".join(", ".join(sorted(regions)) for regions in MRSC_REGION_SETS)
        raise ValueError(
            f"the directory's regions {first}, {second} and witness {witness} must be in one "
            f"of DynamoDB's multi-Region strong consistency region sets: {sets}"
        )
    return second, witness


def _check_standby_places(cells: tuple[Cell, ...], directory_regions: tuple[str, ...]) -> None:
    """One side of a cell per account and region, standbys included; no primary with a
    standby in a directory region, and while the directory runs in one region, no side
    of a cell with a standby there (docs/infra.md)."""
    primaries = {(cell.account, cell.region): cell.cell_id for cell in cells}
    standbys: dict[tuple[str, str], str] = {}
    for cell in cells:
        if cell.standby is None:
            continue
        key = f"{STANDBY_CONTEXT_PREFIX}{cell.cell_id}"
        place = (cell.account, cell.standby.region)  # the standby's account is the cell's
        other = primaries.get(place) or standbys.get(place)
        if other is not None:
            # A standby takes over its cell's whole load: it needs the account's API
            # Gateway and Lambda quotas in its region to itself, as a primary does.
            raise ValueError(
                f"{key}: one cell per account and region, standbys included, but "
                f"{place[0]}/{place[1]} already runs {other}"
            )
        standbys[place] = f"{cell.cell_id}'s standby"
        if len(directory_regions) == 1:
            (directory_region,) = directory_regions
            if directory_region in (cell.region, cell.standby.region):
                # The directory is one bucket in the first cell's region, and a switch is
                # a write to it: were that region lost, a cell with a side there could not
                # fail over (issue 21, "The directory survives a region").
                raise ValueError(
                    f"{key}: the directory lives in {directory_region} (the first cell's "
                    "region) only, and every failover writes it: until the directory runs "
                    "in a second region, no cell with a standby may have its primary or its "
                    "standby there. Name first a cell without a standby (its region keeps "
                    f"the directory), give -c {DIRECTORY_SECOND_REGION_CONTEXT}=... and -c "
                    f"{DIRECTORY_WITNESS_CONTEXT}=..., or leave this standby out"
                )
        elif cell.region in directory_regions:
            # The region that loses this primary must not also lose a directory bucket
            # and its publisher: the switch that moves the cell publishes through them.
            raise ValueError(
                f"{key}: {cell.cell_id}'s primary runs in {cell.region}, one of the "
                f"directory's regions ({', '.join(directory_regions)}): a directory region "
                "may not host a primary that has a standby. Put the directory's second "
                "region elsewhere, or leave this standby out"
            )


def _shards(value: Any) -> int:
    try:
        shards = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{SHARDS_CONTEXT} must be an integer, got {value!r}") from None
    if not 1 <= shards <= 2**32:
        raise ValueError(f"{SHARDS_CONTEXT} must be from 1 to 2^32, got {shards}")
    return shards


def _shard_map(value: Any, shards: int) -> ShardMap:
    """`c0:0-2047,c1:2048-4095` (inclusive ranges of shards, each owned by one cell)."""
    ranges = []
    for entry in str(value).split(","):
        cell_id, _, span = entry.strip().partition(":")
        first, _, last = span.partition("-")
        try:
            ranges.append(ShardRange(int(first), int(last), cell_id))
        except ValueError:
            raise ValueError(
                f"{SHARD_MAP_CONTEXT} entry {entry!r} is not <cell>:<first>-<last>, e.g. c0:0-2047"
            ) from None
    try:
        return ShardMap(shards, tuple(ranges))
    except InvalidDirectory as error:
        raise ValueError(f"{SHARD_MAP_CONTEXT}: {error}") from None


def names_cells(get: Callable[[str], Any]) -> bool:
    """Whether context `cells` names the deployment's cells."""
    return get(CELLS_CONTEXT) not in (None, "", [])


def single_cell(target: Target, unnamed_tables: UnnamedTables | None = None) -> CellsConfig:
    """A deployment without `-c cells`: one cell with every shard, no peers, no directory."""
    return CellsConfig(
        cells=(Cell(SINGLE_CELL_ID, target, unnamed_tables=unnamed_tables),),
        shard_map=ShardMap.even([SINGLE_CELL_ID]),
        has_directory=False,
    )


def cells_from_context(
    get: Callable[[str], Any],
    environ: Mapping[str, str] = NO_ENVIRONMENT,
    *,
    standby_placement: bool = True,
) -> CellsConfig:
    """The cells named by context `cells`; without it, `single_cell` where the CLI deploys
    (`target_from`: context `region`/`account`, else `environ`'s CDK_DEFAULT_*).

    Refuses, with what is wrong and how it should read: malformed entries, a cell id twice,
    an account that is not 12 digits, a region the stack does not support, two cells in
    one account and region (a standby counts as one), a cell with a standby with a side
    in the directory's region,
    a standby of a cell whose tables were created unnamed without their names, a shard map
    with gaps or overlaps, naming a cell that is not in `cells`, or leaving one out; and
    shards, a shard map or a standby without `cells`. `standby_placement=False` leaves
    out the rules of where a standby may run, which bind what is deployed next, not the
    operator's switch of what is deployed already (infra/failover.py).
    """
    if not names_cells(get):
        if get(SHARD_MAP_CONTEXT) or get(SHARDS_CONTEXT):
            raise ValueError(
                f"{SHARDS_CONTEXT} and {SHARD_MAP_CONTEXT} need -c {CELLS_CONTEXT}=..."
            )
        if get(f"{STANDBY_CONTEXT_PREFIX}{SINGLE_CELL_ID}"):
            # A failover moves the cell's clients by its directory entry.
            raise ValueError(
                f"{STANDBY_CONTEXT_PREFIX}{SINGLE_CELL_ID} needs -c {CELLS_CONTEXT}=...: a "
                "standby takes over through the directory, which only a deployment of "
                "named cells has"
            )
        return single_cell(target_from(get, environ), _unnamed_tables(get, SINGLE_CELL_ID))
    value = get(CELLS_CONTEXT)
    entries = value if isinstance(value, list) else str(value).split(",")
    cells = tuple(_with_standby(get, _cell(str(entry))) for entry in entries)
    ids = [cell.cell_id for cell in cells]
    twice = sorted({cell_id for cell_id in ids if ids.count(cell_id) > 1})
    if twice:
        raise ValueError(f"cells: each cell once, but {', '.join(twice)} is named twice")
    places = [(cell.account, cell.region) for cell in cells]
    shared = sorted(
        {f"{account}/{region}" for account, region in places if places.count((account, region)) > 1}
    )
    if shared:
        # API Gateway's and Lambda's quotas are per account and region: what a cell is
        # for. Two cells there would share them (and each take its env's whole share).
        raise ValueError(
            f"cells: one cell per account and region, but {', '.join(shared)} has more"
        )
    second, witness = _directory_regions(get, cells[0].region)
    if standby_placement:
        _check_standby_places(cells, (cells[0].region, *((second,) if second else ())))
    shards = _shards(get(SHARDS_CONTEXT) or DEFAULT_SHARDS)
    if len(cells) > shards:
        raise ValueError(f"{len(cells)} cells need at least as many shards, not {shards}")
    explicit = get(SHARD_MAP_CONTEXT)
    shard_map = _shard_map(explicit, shards) if explicit else ShardMap.even(ids, shards)
    unknown = sorted(set(shard_map.cells()) - set(ids))
    if unknown:
        raise ValueError(f"{SHARD_MAP_CONTEXT} names cells not in cells: {', '.join(unknown)}")
    idle = [cell_id for cell_id in ids if cell_id not in shard_map.cells()]
    if idle:
        # A cell's functions refuse to start without a shard of their own (CellSettings).
        raise ValueError(f"{SHARD_MAP_CONTEXT} gives no shard to {', '.join(idle)}")
    organization = get(ORGANIZATION_CONTEXT) or None
    if organization is not None and not _ORGANIZATION_ID.fullmatch(str(organization)):
        raise ValueError(f"{ORGANIZATION_CONTEXT} must be an AWS Organization id (o-...)")
    if organization is None and len({cell.account for cell in cells}) > 1:
        raise ValueError(
            f"cells in more than one account need -c {ORGANIZATION_CONTEXT}=o-...: their "
            "Relays and the directory's bucket admit the organization, never account by account"
        )
    directory_key = get(DIRECTORY_KEY_CONTEXT) or None
    if directory_key is not None and not _DIRECTORY_KEY.fullmatch(str(directory_key)):
        raise ValueError(
            f"{DIRECTORY_KEY_CONTEXT} must be the directory stack's output DirectoryPublicKey "
            "(32 bytes, base64url: 43 characters)"
        )
    return CellsConfig(
        cells=cells,
        shard_map=shard_map,
        organization=organization,
        directory_second_region=second,
        directory_witness=witness,
        directory_key=None if directory_key is None else str(directory_key),
    )
