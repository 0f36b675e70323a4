"""Configuration, parsed once from the environment at first use. Logic never reads os.environ."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING

from messenger.contract import (
    DEFAULT_MESSAGE_TTL_SECONDS,
    DEFAULT_RATE_LIMITS,
    DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR,
    PRESENCE_WORKER,
    Env,
    MoverEnv,
    RateLimit,
)
from messenger_protocol.cells import ShardMap, is_cell_id
from messenger_protocol.connect import canonical_endpoint
from messenger_protocol.encoding import decoded_length, is_base64url
from messenger_protocol.limits import (
    KEY_BYTES,
    MAX_EPOCH_CHARS,
    MIN_QUEUE_MESSAGES,
    MIN_QUEUE_MESSAGES_PER_SENDER,
)
from messenger_protocol.names import Action

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_RATE_LIMIT_PER_MINUTE = DEFAULT_RATE_LIMITS[Action.SEND_MESSAGE].per_minute
DEFAULT_RATE_LIMIT_BURST = DEFAULT_RATE_LIMITS[Action.SEND_MESSAGE].burst
DEFAULT_PUSH_MIN_INTERVAL_SECONDS = 60
# Outside Lambda (the local stack, tests) there is no region to name the generation by.
LOCAL_CELL_EPOCH = "local"
# The sides of a cell (docs/protocol.md §7); a deployment without a standby is a primary.
PRIMARY_SIDE = "primary"
STANDBY_SIDE = "standby"
CELL_SIDES = (PRIMARY_SIDE, STANDBY_SIDE)
# The cell a deployment is when its environment names none (no CELL_ID): the one cell of
# a single deployment, home to every user, with no peers.
DEFAULT_CELL_ID = "c0"


@dataclass(frozen=True)
class MeshBucket:
    """Where the peers' Relay records are: the directory's bucket (docs/scale.md "The
    mesh"). A deployment of one cell has none (an empty name) and no peers."""

    name: str = ""
    region: str = ""
    owner: str = ""
    # The directory in two regions: the second region's bucket (same owner), where the
    # signed directory is read when this one cannot be. Empty: none.
    fallback_name: str = ""
    fallback_region: str = ""

    def fallback(
        self, s3_for: Callable[[str], S3Client]
    ) -> tuple[Callable[[], S3Client], str] | None:
        """The second region's bucket as the readers take it (an S3 client's factory for
        its region, and its name), None with one directory region."""
        if not self.fallback_name:
            return None
        region = self.fallback_region
        return (lambda: s3_for(region)), self.fallback_name


def _mesh_bucket(environ: Mapping[str, str]) -> MeshBucket:
    """The directory's bucket(s) from MESH_*; ValueError if the fallback is half named."""
    mesh = MeshBucket(
        name=environ.get(Env.MESH_BUCKET.value, "").strip(),
        region=environ.get(Env.MESH_BUCKET_REGION.value, "").strip(),
        owner=environ.get(Env.MESH_BUCKET_OWNER.value, "").strip(),
        fallback_name=environ.get(Env.MESH_FALLBACK_BUCKET.value, "").strip(),
        fallback_region=environ.get(Env.MESH_FALLBACK_REGION.value, "").strip(),
    )
    if bool(mesh.fallback_name) != bool(mesh.fallback_region):
        raise ValueError(
            f"{Env.MESH_FALLBACK_BUCKET.value} and {Env.MESH_FALLBACK_REGION.value} go together"
        )
    return mesh


@dataclass(frozen=True)
class CellSettings:
    """This deployment's place among the cells (docs/protocol.md §6). Nothing here grows
    with the number of cells: the shard map and the peers are read from the directory's
    bucket (`mesh`), the map verified with the directory's public key (`directory_key`,
    dal/directory_map.py).

    `shard_map` is a map given in process instead: the one cell of a deployment without
    peers (`single`), or a test's. None: the published directory's."""

    cell_id: str
    shard_map: ShardMap | None = None
    mesh: MeshBucket = field(default_factory=MeshBucket)
    # The directory key's public half (base64url, 32 bytes), that the published map must
    # be signed by.
    directory_key: str = ""

    def __post_init__(self) -> None:
        if self.shard_map is None:
            if not (self.mesh.name and self.mesh.region and self.mesh.owner):
                raise ValueError(
                    f"a cell that reads its shard map from the directory needs "
                    f"{Env.MESH_BUCKET.value}, {Env.MESH_BUCKET_REGION.value} and "
                    f"{Env.MESH_BUCKET_OWNER.value}"
                )
            if not (
                is_base64url(self.directory_key) and decoded_length(self.directory_key) == KEY_BYTES
            ):
                raise ValueError(
                    f"{Env.DIRECTORY_PUBLIC_KEY.value} must be the directory key's public half "
                    f"({KEY_BYTES} bytes, base64url: the directory stack's output "
                    f"DirectoryPublicKey), not {self.directory_key!r}; without it the cell "
                    "cannot believe any shard map"
                )
            return
        cells = set(self.shard_map.cells())
        if self.cell_id not in cells:
            raise ValueError(f"{Env.CELL_ID.value} {self.cell_id!r} owns no shard of the map")
        if len(cells) > 1 and not (self.mesh.name and self.mesh.region and self.mesh.owner):
            raise ValueError(
                f"a cell with peers needs {Env.MESH_BUCKET.value}, "
                f"{Env.MESH_BUCKET_REGION.value} and {Env.MESH_BUCKET_OWNER.value}"
            )

    @classmethod
    def single(cls, cell_id: str = DEFAULT_CELL_ID) -> CellSettings:
        """A deployment that is one cell: every shard is its own and it has no peers."""
        return cls(cell_id, ShardMap.even([cell_id]))

    @property
    def reads_directory(self) -> bool:
        """Whether the shard map is the published directory's (not given in process)."""
        return self.shard_map is None


@dataclass(frozen=True)
class Settings:
    users_table: str
    queue_table: str
    limits_table: str
    message_ttl_seconds: int = DEFAULT_MESSAGE_TTL_SECONDS
    connections_endpoint: str | None = None
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    rate_limit_burst: int = DEFAULT_RATE_LIMIT_BURST
    push_apps: Mapping[str, str] = field(default_factory=dict)  # platform -> application ARN
    push_min_interval_seconds: int = DEFAULT_PUSH_MIN_INTERVAL_SECONDS
    registrations_per_ip_per_hour: int = DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR
    # The presence function's name (or ARN) as Lambda's Invoke takes it.
    presence_function: str = PRESENCE_WORKER.function_name
    # The presence function's settle queue (its URL), where a flap waits out its settle
    # time; only the presence function is given it ("" elsewhere).
    presence_settle_queue: str = ""
    # The region part of the cell's epoch (logic/epoch.py), which adds the generation.
    cell_epoch: str = LOCAL_CELL_EPOCH
    # This deployment's place among the cells; a single deployment is one cell.
    cell: CellSettings = field(default_factory=CellSettings.single)
    # Which side of the cell this deployment is: it serves while the cell names it active.
    cell_side: str = PRIMARY_SIDE
    # The queue caps (docs/protocol.md §2): messages one queue holds, and from one sender.
    queue_cap_messages: int = MIN_QUEUE_MESSAGES
    queue_cap_per_sender: int = MIN_QUEUE_MESSAGES_PER_SENDER
    # The endpoints this side serves besides the one each event names (docs/protocol.md
    # §1 `aud`): a custom domain, the emulator's own URL; canonical (canonical_endpoint).
    connect_endpoints: tuple[str, ...] = ()
    # Whether the v1.1 connect signature (no `aud`, device 1) is still accepted.
    accept_v11_connect: bool = True

    def __post_init__(self) -> None:
        if self.cell_side not in CELL_SIDES:
            raise ValueError(
                f"{Env.CELL_SIDE.value} must be {' or '.join(CELL_SIDES)}, not {self.cell_side!r}"
            )
        for name in ("users_table", "queue_table", "limits_table"):
            if len(getattr(self, name)) < 3:
                raise ValueError(f"{name} must name a DynamoDB table")
        if not 1 <= len(self.cell_epoch) <= MAX_EPOCH_CHARS or not self.cell_epoch.isprintable():
            raise ValueError(
                f"cell_epoch must be 1-{MAX_EPOCH_CHARS} printable characters, "
                f"not {self.cell_epoch!r}"
            )
        for name, low in (
            ("message_ttl_seconds", 1),
            ("rate_limit_per_minute", 1),
            ("rate_limit_burst", 1),
            ("push_min_interval_seconds", 0),
            ("registrations_per_ip_per_hour", 1),
            ("queue_cap_messages", 1),
            ("queue_cap_per_sender", 1),
        ):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")

    def rate_limit(self, action: Action) -> RateLimit:
        """The per-user limit of an action (sendMessage's is configurable)."""
        if action is Action.SEND_MESSAGE:
            return RateLimit(burst=self.rate_limit_burst, per_minute=self.rate_limit_per_minute)
        return DEFAULT_RATE_LIMITS[action]


def _integer(environ: Mapping[str, str], env: Env, default: int) -> int:
    text = environ.get(env.value)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{env.value} must be an integer, not {text!r}") from None


def _flag(environ: Mapping[str, str], env: Env, default: bool) -> bool:
    text = environ.get(env.value, "").strip().lower()
    if not text:
        return default
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{env.value} must be true or false, not {text!r}")


def _endpoints(environ: Mapping[str, str]) -> tuple[str, ...]:
    """CONNECT_ENDPOINTS, each in the canonical form `aud` is compared in."""
    text = environ.get(Env.CONNECT_ENDPOINTS.value, "")
    try:
        return tuple(canonical_endpoint(url.strip()) for url in text.split(",") if url.strip())
    except ValueError as error:
        raise ValueError(f"{Env.CONNECT_ENDPOINTS.value}: {error}") from None


def _cell(environ: Mapping[str, str]) -> CellSettings:
    """CELL_ID alone: the one cell of its deployment. With the directory's bucket
    (MESH_BUCKET...): a cell among others, which reads the shard map from the directory
    and believes it only if signed by DIRECTORY_PUBLIC_KEY."""
    cell_id = environ.get(Env.CELL_ID.value, "").strip()
    if not cell_id:
        return CellSettings.single()
    if not is_cell_id(cell_id):
        raise ValueError(f"{Env.CELL_ID.value} must be a cell id, not {cell_id!r}")
    mesh = _mesh_bucket(environ)
    if not mesh.name:
        return CellSettings.single(cell_id)
    directory_key = environ.get(Env.DIRECTORY_PUBLIC_KEY.value, "").strip()
    return CellSettings(cell_id, None, mesh, directory_key)


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; a missing table name fails loudly."""
    push_apps = {
        platform: environ[env.value]
        for platform, env in (
            ("APNS", Env.PUSH_APP_APNS),
            ("APNS_SANDBOX", Env.PUSH_APP_APNS_SANDBOX),
            ("GCM", Env.PUSH_APP_GCM),
        )
        if environ.get(env.value)
    }
    settings = Settings(
        users_table=environ.get(Env.USERS_TABLE.value, ""),
        queue_table=environ.get(Env.QUEUE_TABLE.value, ""),
        limits_table=environ.get(Env.LIMITS_TABLE.value, ""),
        message_ttl_seconds=_integer(environ, Env.MESSAGE_TTL_SECONDS, DEFAULT_MESSAGE_TTL_SECONDS),
        connections_endpoint=environ.get(Env.CONNECTIONS_ENDPOINT.value) or None,
        rate_limit_per_minute=_integer(
            environ, Env.RATE_LIMIT_PER_MINUTE, DEFAULT_RATE_LIMIT_PER_MINUTE
        ),
        rate_limit_burst=_integer(environ, Env.RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_BURST),
        queue_cap_messages=_integer(environ, Env.QUEUE_CAP_MESSAGES, MIN_QUEUE_MESSAGES),
        queue_cap_per_sender=_integer(
            environ, Env.QUEUE_CAP_PER_SENDER, MIN_QUEUE_MESSAGES_PER_SENDER
        ),
        push_apps=push_apps,
        push_min_interval_seconds=_integer(
            environ, Env.PUSH_MIN_INTERVAL_SECONDS, DEFAULT_PUSH_MIN_INTERVAL_SECONDS
        ),
        registrations_per_ip_per_hour=_integer(
            environ, Env.REGISTRATIONS_PER_IP_PER_HOUR, DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR
        ),
        cell_epoch=(
            environ.get(Env.CELL_EPOCH.value)
            or environ.get("AWS_REGION")  # set by Lambda itself
            or LOCAL_CELL_EPOCH
        ),
        cell=_cell(environ),
        cell_side=environ.get(Env.CELL_SIDE.value, "").strip() or PRIMARY_SIDE,
        connect_endpoints=_endpoints(environ),
        accept_v11_connect=_flag(environ, Env.ACCEPT_V11_CONNECT, default=True),
        presence_settle_queue=environ.get(Env.PRESENCE_SETTLE_QUEUE.value, "").strip(),
    )
    presence_function = environ.get(Env.PRESENCE_FUNCTION.value)
    return replace(settings, presence_function=presence_function) if presence_function else settings


@cache
def settings() -> Settings:
    return settings_from(os.environ)


@dataclass(frozen=True)
class MoverCell:
    """A cell's tables, where a move reads or writes them."""

    region: str
    users: str
    queue: str
    limits: str


@dataclass(frozen=True)
class MoverSettings:
    """The Mover's: its own cell (every move it runs starts there), the tables it was given
    (its own, and those of cells not named by the rule), the deployment's name (the rule's
    part), where the peers' Relay records are (their regions), the directory function and
    its own cell's @connections API. Nothing here grows with the number of cells."""

    cell_id: str
    cells: Mapping[str, MoverCell]
    deployment: str
    mesh: MeshBucket
    directory_function: str
    connections_endpoint: str


def mover_settings_from(environ: Mapping[str, str]) -> MoverSettings:
    """The Mover's settings; ValueError naming what is missing or malformed."""
    values = {}
    for env in MoverEnv:
        values[env] = environ.get(env.value, "").strip()
        if not values[env]:
            raise ValueError(f"{env.value} is not set")
    try:
        cells = {
            cell_id: MoverCell(**{name: str(tables[name]) for name in MOVER_CELL_FIELDS})
            for cell_id, tables in json.loads(values[MoverEnv.CELLS]).items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"{MoverEnv.CELLS.value}: {error!r}") from None
    cell_id = values[MoverEnv.CELL_ID]
    if cell_id not in cells:
        raise ValueError(f"{MoverEnv.CELLS.value} has no tables for {cell_id}")
    mesh = _mesh_bucket(environ)
    if not (mesh.name and mesh.region and mesh.owner):
        raise ValueError(
            f"the Mover needs {Env.MESH_BUCKET.value}, {Env.MESH_BUCKET_REGION.value} and "
            f"{Env.MESH_BUCKET_OWNER.value}: the peers' regions are in their Relay records"
        )
    return MoverSettings(
        cell_id=cell_id,
        cells=cells,
        deployment=values[MoverEnv.DEPLOYMENT],
        mesh=mesh,
        directory_function=values[MoverEnv.DIRECTORY_FUNCTION],
        connections_endpoint=values[MoverEnv.CONNECTIONS_ENDPOINT],
    )


MOVER_CELL_FIELDS = ("region", "users", "queue", "limits")


@cache
def mover_settings() -> MoverSettings:
    return mover_settings_from(os.environ)
