"""One source of truth for everything the functions, the stack, the emulator and the tests share.

Route table, table definitions, environment variable names and the server's own limits
live here and nowhere else; the protocol itself (actions, frames, limits) lives in
`messenger_protocol`. Nothing in this module does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from messenger_protocol.cells import DIRECTORY_VERSION_STAGE_VARIABLE, FENCED_STAGE_VARIABLE
from messenger_protocol.connect import REQUIRED_PARAMS
from messenger_protocol.limits import (
    MAX_CONNECTION_SECONDS,
    MIN_SYNC_PAGE_ITEMS,
)
from messenger_protocol.names import Action, ErrorCode

# --- Server-side limits (the protocol's own are in messenger_protocol.limits) ----------

# A connect nonce is remembered until its ts has left the accepted window (plus a minute
# for the clocks of Lambda containers): after that the signed query is refused anyway.
CONNECT_NONCE_SLACK_SECONDS = 60

DEFAULT_MESSAGE_TTL_SECONDS = 30 * 24 * 3600
# API Gateway closes every WebSocket after 2 hours; a connection recorded longer ago
# than this is stale even if its $disconnect never reached us.
STALE_CONNECTION_SECONDS = MAX_CONNECTION_SECONDS + 300
# Presence flapping (docs/protocol.md §2): a change that comes within this long of the
# user's previous one is told only once it has held PRESENCE_SETTLE_MS, and a change that
# a newer one overtook meanwhile is not told at all: a burst of flaps reaches watchers as
# its final state, within a second or two. A change after a quiet spell is told at once.
PRESENCE_FLAP_WINDOW_MS = 2_000
PRESENCE_SETTLE_MS = 1_000
# A flap is held on an SQS queue (the settle queue) for the rest of its settle time, and
# the presence function reads it back in batches: no invocation waits (docs/performance.md
# "Presence flaps"). SQS delays in whole seconds, one at the least.
PRESENCE_SETTLE_BATCH_SIZE = 10
# What a batch of settled changes may take before SQS hands them out again: six times the
# functions' 29 s timeout, as AWS advises for a queue a function reads.
PRESENCE_SETTLE_VISIBILITY_SECONDS = 6 * 29
# A settled change that fails this many times goes to the dead-letter queue (an alarm).
PRESENCE_SETTLE_MAX_RECEIVES = 5
# A flap told hours late is no news: the queue keeps what it holds for 4 hours.
PRESENCE_SETTLE_RETENTION_SECONDS = 4 * 3600

# One `sync` answers one page, sized from API Gateway's 29 s integration timeout (and the
# functions' own 29 s): at most SYNC_PAGE_POSTS posts, each a sequential @connections
# POST of ~20-50 ms on AWS (≤ 10 s), and at most SYNC_PAGE_ITEMS items, which `batch`
# packs into a handful of 32 KB `items` frames when they are short (docs/performance.md).
SYNC_PAGE_ITEMS = 500
SYNC_PAGE_POSTS = 200
assert MIN_SYNC_PAGE_ITEMS <= SYNC_PAGE_POSTS <= SYNC_PAGE_ITEMS

# Every device is one SNS Publish per offline send; old installs beyond this are dropped.
MAX_PUSH_DEVICES = 10


@dataclass(frozen=True)
class RateLimit:
    """A leaky bucket: `burst` frames at once, then `per_minute` sustained."""

    burst: int
    per_minute: int

    @property
    def interval_ms(self) -> int:
        """How long one unit takes to leak out of the bucket."""
        return max(1, 60_000 // self.per_minute)


@dataclass(frozen=True)
class FrameWindow:
    """At most `limit` events within `window_ms`, counted in `slots` slots of
    `window_ms / slots` each: an event leaves the count between one slot short of the
    window and the whole window after it, so the count never holds anything older than
    the window (no one within the limit is refused), and holds all of it but its oldest
    slot."""

    limit: int
    window_ms: int
    slots: int

    @property
    def slot_ms(self) -> int:
        return self.window_ms // self.slots


# Per user and action, sized from what the SDK, the CLI and the web app do (docs/limits.md
# says why each is what it is, and what a frame costs). sendMessage's own comes from the
# environment (RATE_LIMIT_PER_MINUTE and RATE_LIMIT_BURST).
DEFAULT_RATE_LIMITS: dict[Action, RateLimit] = {
    Action.SEND_MESSAGE: RateLimit(burst=60, per_minute=120),
    Action.ACK: RateLimit(burst=300, per_minute=600),
    Action.MARK_SEEN: RateLimit(burst=100, per_minute=120),
    Action.SYNC: RateLimit(burst=120, per_minute=120),
    Action.GET_PRESENCE: RateLimit(burst=60, per_minute=60),
    Action.GET_KEYS: RateLimit(burst=200, per_minute=120),
    Action.REGISTER_PUSH: RateLimit(burst=10, per_minute=6),
    Action.SET_PRESENCE_VISIBILITY: RateLimit(burst=30, per_minute=10),
    Action.SET_BLOCKED: RateLimit(burst=30, per_minute=10),
    Action.GET_SETTINGS: RateLimit(burst=30, per_minute=10),
    # Linking or removing a device is a person's act on device 1: a few a minute.
    Action.SET_DEVICES: RateLimit(burst=10, per_minute=6),
}
# Seen receipts one reader may queue for one user: a stranger's flood into someone's
# queue stops here, while a reader in a busy conversation (the CLI's chat sends one
# markSeen per message it shows) stays under it.
MARK_SEEN_PER_RECIPIENT = RateLimit(burst=60, per_minute=60)
# New users one source address may register per hour (IPv6: per /64). Generous, since
# carrier-grade NAT puts many people behind one address; REGISTRATIONS_PER_IP_PER_HOUR.
DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR = 30

# The functions log every push that went out with this message (and the recipient, the
# platform and payloadBytes); the local stack turns those records into console lines.
PUSH_SENT_LOG_MESSAGE = "push sent"

# --- Environment (names only; values are parsed once in messenger.config) ----------


class Env(StrEnum):
    USERS_TABLE = "USERS_TABLE"
    QUEUE_TABLE = "QUEUE_TABLE"
    MESSAGE_TTL_SECONDS = "MESSAGE_TTL_SECONDS"
    # Optional: where the @connections API lives. Unset on AWS, where it is built from
    # the event's domainName and stage; the local emulator sets it to itself.
    CONNECTIONS_ENDPOINT = "CONNECTIONS_ENDPOINT"
    RATE_LIMIT_PER_MINUTE = "RATE_LIMIT_PER_MINUTE"
    RATE_LIMIT_BURST = "RATE_LIMIT_BURST"
    # Optional: the queue caps (docs/protocol.md §2); unset, the least the contract allows.
    QUEUE_CAP_MESSAGES = "QUEUE_CAP_MESSAGES"
    QUEUE_CAP_PER_SENDER = "QUEUE_CAP_PER_SENDER"
    PUSH_APP_APNS = "PUSH_APP_APNS"
    PUSH_APP_APNS_SANDBOX = "PUSH_APP_APNS_SANDBOX"
    PUSH_APP_GCM = "PUSH_APP_GCM"
    PUSH_MIN_INTERVAL_SECONDS = "PUSH_MIN_INTERVAL_SECONDS"
    LIMITS_TABLE = "LIMITS_TABLE"
    REGISTRATIONS_PER_IP_PER_HOUR = "REGISTRATIONS_PER_IP_PER_HOUR"
    # The function that tells watchers about presence changes (its name or ARN).
    PRESENCE_FUNCTION = "PRESENCE_FUNCTION"
    # The presence function's settle queue (its URL): where a flap waits out its settle.
    PRESENCE_SETTLE_QUEUE = "PRESENCE_SETTLE_QUEUE"
    # The name of the cell's current generation, sent in every syncDone (docs/protocol.md §7);
    # a failover changes it. Unset: the region the functions run in (or "local").
    CELL_EPOCH = "CELL_EPOCH"
    # Which side of its cell this deployment is, "primary" or "standby" (docs/protocol.md §7
    # Fencing): it serves only while the cell's state names it the active side. Unset: primary.
    CELL_SIDE = "CELL_SIDE"
    # Cells (docs/protocol.md §6; unset: one cell, every user at home). This cell's id.
    # Nothing names a peer, nor holds the shard map: the map is the signed directory's and
    # each peer's Relay and relay key are read from the directory's bucket (docs/scale.md
    # "The mesh"), whose name, region and owning account MESH_BUCKET* are; the directory is
    # believed only if signed by DIRECTORY_PUBLIC_KEY (base64url, the directory stack's
    # output DirectoryPublicKey). Without MESH_BUCKET the cell is its deployment's only one.
    CELL_ID = "CELL_ID"
    DIRECTORY_PUBLIC_KEY = "DIRECTORY_PUBLIC_KEY"
    # The endpoints this side serves besides the one API Gateway names in each event
    # (wss://domainName/stage): a custom domain, the emulator's own URL. Comma-separated.
    CONNECT_ENDPOINTS = "CONNECT_ENDPOINTS"
    # "false" turns the v1.1 connect signature off (docs/protocol.md §1): every handshake
    # must then be bound to this side's endpoint (`aud`). Unset: accepted.
    ACCEPT_V11_CONNECT = "ACCEPT_V11_CONNECT"
    MESH_BUCKET = "MESH_BUCKET"
    MESH_BUCKET_REGION = "MESH_BUCKET_REGION"
    MESH_BUCKET_OWNER = "MESH_BUCKET_OWNER"
    # The directory in two regions (docs/availability.md): the second region's bucket
    # (same owner), where the signed directory is read when the first cannot be.
    MESH_FALLBACK_BUCKET = "MESH_FALLBACK_BUCKET"
    MESH_FALLBACK_REGION = "MESH_FALLBACK_REGION"


class MoverEnv(StrEnum):
    """The Mover's environment (a shard move's runner on AWS, messenger.handlers.mover;
    infra/mover.py): it runs moves whose old home is its own cell."""

    CELL_ID = "MOVER_CELL_ID"
    # This cell's tables, and those of any cell whose tables are not named by the rule
    # (`table_name`: cells deployed before it, given `-c tableNames:<cell>`), JSON:
    # {"c0": {"region": R, "users": T, "queue": T, "limits": T}}. Every other cell is
    # found at run time: its tables by the rule, its region from its Relay record, so
    # nothing here grows with the number of cells (docs/scale.md "The mesh").
    CELLS = "MOVER_CELLS"
    # The deployment's environment name (`dev`, `prod`): the rule names tables with it.
    DEPLOYMENT = "MOVER_DEPLOYMENT"
    # The directory function (its ARN): it reads and publishes the shard map.
    DIRECTORY_FUNCTION = "MOVER_DIRECTORY_FUNCTION"
    # This cell's @connections API (https://...): moved users' connections are closed there.
    CONNECTIONS_ENDPOINT = "MOVER_CONNECTIONS_ENDPOINT"


# What the Relay takes from each calling cell (docs/scale.md "The mesh"): one counter item
# per caller, kept under the ~1,000 writes a second one DynamoDB item sustains, so that one
# sick cell cannot take the Relay's whole reserved concurrency from the others.
RELAY_CALLS_PER_CALLER = RateLimit(burst=1000, per_minute=30_000)
# The Relay's reserved concurrency: the most of the account's Lambda concurrency that
# peers can take, leaving the rest to this cell's own routes.
RELAY_RESERVED_CONCURRENCY = 100

SERVICE_NAME = "messenger"
METRICS_NAMESPACE = "Messenger"


# --- Metrics (EMF counters the functions publish; the stack's dashboard and alarms read them)


class Metric(StrEnum):
    CONNECTIONS_OPENED = "ConnectionsOpened"
    CONNECTIONS_CLOSED = "ConnectionsClosed"
    STALE_CONNECTIONS_REMOVED = "StaleConnectionsRemoved"
    # A device opened a connection past its 4 (docs/protocol.md §1): its oldest closed.
    CONNECTIONS_REPLACED = "ConnectionsReplaced"
    MESSAGES_STORED = "MessagesStored"
    MESSAGES_DELIVERED_LIVE = "MessagesDeliveredLive"
    MESSAGES_LEFT_QUEUED = "MessagesLeftQueued"
    # Posts of a message to a live connection that failed (not Gone) after the sender's
    # ack went out: the copy waits in its queue, and its device gets a push.
    LIVE_POSTS_FAILED = "LivePostsFailed"
    DUPLICATE_SENDS = "DuplicateSends"
    RECEIPTS_QUEUED = "ReceiptsQueued"
    RECEIPTS_DELIVERED_LIVE = "ReceiptsDeliveredLive"
    ITEMS_SYNCED = "ItemsSynced"
    SYNC_PAGES = "SyncPages"
    PUSHES_SENT = "PushesSent"
    PUSHES_FAILED = "PushesFailed"
    PUSHES_COLLAPSED = "PushesCollapsed"
    ENDPOINTS_DISABLED = "EndpointsDisabled"
    PUSH_DEVICES_REGISTERED = "PushDevicesRegistered"
    PUSH_DEVICES_TAKEN_OVER = "PushDevicesTakenOver"
    PRESENCE_CHANGES_ANNOUNCED = "PresenceChangesAnnounced"
    PRESENCE_ANNOUNCEMENTS_FAILED = "PresenceAnnouncementsFailed"
    PRESENCE_FRAMES_SENT = "PresenceFramesSent"
    PRESENCE_POSTS_FAILED = "PresencePostsFailed"
    # Presence changes a newer change of the same user overtook before they were told.
    PRESENCE_CHANGES_COALESCED = "PresenceChangesCoalesced"
    # Flaps put on the settle queue, to be told (or overtaken) once they have held.
    PRESENCE_CHANGES_HELD = "PresenceChangesHeld"
    # Records of the settle queue that were not a change: logged and dropped.
    PRESENCE_SETTLE_RECORDS_DROPPED = "PresenceSettleRecordsDropped"
    # Presence changes handed to watcher cells (one asynchronous Relay call per cell).
    PRESENCE_CHANGES_RELAYED = "PresenceChangesRelayed"
    PRESENCE_RELAYS_FAILED = "PresenceRelaysFailed"
    SUBSCRIPTIONS_DROPPED = "SubscriptionsDropped"
    CONNECTS_UNDONE = "ConnectsUndone"
    # Messages and seen receipts from users their recipient blocks: acked, then dropped.
    BLOCKED_DROPPED = "BlockedDropped"
    # setDevices (docs/protocol.md §8): lists stored, devices removed, their queues' items.
    DEVICE_LISTS_STORED = "DeviceListsStored"
    DEVICES_REMOVED = "DevicesRemoved"
    REMOVED_DEVICE_ITEMS_DELETED = "RemovedDeviceItemsDeleted"
    # Shard moves (the Mover, messenger.handlers.mover): what each step (or page) did.
    MOVE_USERS_COPIED = "MoveUsersCopied"
    MOVE_ITEMS_COPIED = "MoveItemsCopied"
    MOVE_STEPS_RUN = "MoveStepsRun"
    MOVE_STEP_FAILURES = "MoveStepFailures"
    # Milliseconds a step (or one page of it) took, with a dimension `Step` (its name).
    MOVE_STEP_DURATION = "MoveStepDuration"


# Refusals of a handshake (the authorizer's Deny) are counted under this name.
CONNECT_DENIED = "CONNECT_DENIED"


def refused_metric(code: ErrorCode | str) -> str:
    """The counter of refusals with a protocol error code: BAD_REQUEST -> RefusedBadRequest."""
    return "Refused" + str(code).title().replace("_", "")


# --- DynamoDB tables ---------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None
    projection: str = "ALL"  # "ALL" or "KEYS_ONLY"


@dataclass(frozen=True)
class TableSpec:
    logical_name: str
    env: Env
    partition_key: str
    sort_key: str
    ttl_attribute: str = "expiresAt"
    # How far back point-in-time recovery reaches (1-35 days): what a deleted item
    # outlives its deletion by, in the backups.
    recovery_days: int = 35
    global_indexes: tuple[Index, ...] = ()
    local_indexes: tuple[Index, ...] = ()

    def key_attributes(self) -> list[str]:
        names = [self.partition_key, self.sort_key]
        for index in (*self.global_indexes, *self.local_indexes):
            names += [index.partition_key] + ([index.sort_key] if index.sort_key else [])
        return list(dict.fromkeys(names))


ORDER_INDEX = "byOrder"

# Users, their connections (a map on the profile item), what each connection watches,
# who watches whom, who may see whose presence, and connect nonces.
USERS_TABLE = TableSpec(
    logical_name="Users",
    env=Env.USERS_TABLE,
    partition_key="pk",
    sort_key="sk",
)

# Every user's queue of undelivered items (messages and receipts).
QUEUE_TABLE = TableSpec(
    logical_name="Queue",
    env=Env.QUEUE_TABLE,
    partition_key="pk",
    sort_key="sk",
    # Nothing about a message stays once it is acknowledged: the backups of the queue
    # keep a deleted item one day, the least recovery allows (the clients are the record,
    # docs/protocol.md §7).
    recovery_days=1,
    local_indexes=(
        # The base key makes a resend idempotent; this index gives the messages' store
        # order. Only messages carry `seq` (a receipt's key, r#<seq>, is already in
        # order), and the index keeps keys only, so a message's body is written once.
        Index(name=ORDER_INDEX, partition_key="pk", sort_key="seq", projection="KEYS_ONLY"),
    ),
)

# Rate-limit buckets and registration counters: short-lived counters only, in a table
# of their own so that a function which only counts may write nothing else.
LIMITS_TABLE = TableSpec(
    logical_name="Limits",
    env=Env.LIMITS_TABLE,
    partition_key="pk",
    sort_key="sk",
    recovery_days=1,  # counters of the last hour at most: nothing worth recovering
)

TABLES = (USERS_TABLE, QUEUE_TABLE, LIMITS_TABLE)


STANDBY_SUFFIX = "-standby"


def table_name(env: str, cell_id: str, spec: TableSpec, standby: bool = False) -> str:
    """A cell's table, named from the cell's first deploy: `TableName` is create-only, so a
    name given later (when a standby comes) would replace the table with an empty one.

    The names are the same with and without a standby. A regional table
    (`infra.tables.REGIONAL_TABLES`) is one per side: the standby's carries its suffix.
    One rule for the stacks (infra/cells.py) and the Mover, which finds peers' tables by it.
    """
    side = STANDBY_SUFFIX if standby else ""
    return f"messenger-{env}-{cell_id}{side}-{spec.logical_name.lower()}"


def create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The boto3 `create_table` arguments for a table (tests and the local emulator)."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in spec.key_attributes()
        ],
        "KeySchema": [
            {"AttributeName": spec.partition_key, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
        ],
    }

    def index_request(index: Index) -> dict[str, Any]:
        schema = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        if index.sort_key:
            schema.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
        return {
            "IndexName": index.name,
            "KeySchema": schema,
            "Projection": {"ProjectionType": index.projection},
        }

    if spec.global_indexes:
        request["GlobalSecondaryIndexes"] = [index_request(i) for i in spec.global_indexes]
    if spec.local_indexes:
        request["LocalSecondaryIndexes"] = [index_request(i) for i in spec.local_indexes]
    return request


# --- Routes ------------------------------------------------------------------------


class Access(StrEnum):
    """What a function may touch. The stack turns each into the narrowest IAM grant."""

    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    QUEUE_READ = "queue:read"
    QUEUE_WRITE = "queue:write"
    POST_TO_CONNECTION = "connections:post"
    PUSH = "sns:push"
    # Update the caller's rate-limit buckets (and, for the authorizer, the registration
    # counters): every frame route and the authorizer.
    LIMITS = "limits:update"
    # Hand a presence change to the presence function (Lambda's asynchronous invoke).
    ANNOUNCE_PRESENCE = "presence:announce"
    # Hold a flap on the settle queue until it has settled (SQS SendMessage to that queue).
    SETTLE_PRESENCE = "presence:settle"
    # Invoke the peer cells' Relay functions (and nothing else of theirs), found in their
    # Relay records (MESH_READ's).
    RELAY = "cells:relay"
    # Read the Relay records in the directory's bucket: where a peer's Relay is, and the
    # keys its calls are signed with (docs/scale.md "The mesh").
    MESH_READ = "cells:records"
    # Read the signed directory in the directory's bucket: the shard map every function
    # that asks where a user's home is serves by (messenger.dal.directory_map).
    SHARD_MAP = "cells:map"


@dataclass(frozen=True)
class Route:
    key: str
    handler: str  # "module.path.function", relative to functions/
    function_name: str  # logical name of the Lambda function behind the route
    access: frozenset[Access] = field(default_factory=frozenset)
    # Two-way routes send the function's returned body back to the caller.
    two_way: bool = True


@dataclass(frozen=True)
class Function:
    """A function that is not behind a route: peers invoke it (the cells' Relay), or this
    cell's own functions do (the presence function, named to them by PRESENCE_FUNCTION)."""

    handler: str
    function_name: str
    access: frozenset[Access]


@dataclass(frozen=True)
class Authorizer:
    handler: str
    function_name: str
    access: frozenset[Access]
    # Query-string parameters API Gateway requires before it calls the authorizer.
    identity_query_params: tuple[str, ...]


_R, _W = Access.USERS_READ, Access.USERS_WRITE
_QR, _QW = Access.QUEUE_READ, Access.QUEUE_WRITE
_POST, _PUSH = Access.POST_TO_CONNECTION, Access.PUSH
_LIMITS, _ANNOUNCE = Access.LIMITS, Access.ANNOUNCE_PRESENCE
_SETTLE = Access.SETTLE_PRESENCE
_RELAY, _MESH, _MAP = Access.RELAY, Access.MESH_READ, Access.SHARD_MAP

AUTHORIZER = Authorizer(
    handler="messenger.handlers.authorizer.handler",
    function_name="Authorizer",
    # RELAY: a registration is counted in the cell that keeps its address's budget; MESH:
    # where that cell's Relay is, and its key (docs/scale.md "The mesh").
    access=frozenset({_R, _W, _LIMITS, _RELAY, _MESH, _MAP}),
    identity_query_params=tuple(param.value for param in REQUIRED_PARAMS),
)

# Tells watchers that a user came online or went offline, off the path of whoever caused
# it: a handshake or a send never waits on (or fails because of) who watches the user.
PRESENCE_WORKER = Function(
    handler="messenger.handlers.presence_changed.handler",
    function_name="PresenceChanged",
    # ANNOUNCE: a watcher found closed is forgotten, and may go offline itself.
    # RELAY: watchers at home in other cells hear of the change through their cell.
    # SETTLE: a flap waits out its settle time on the settle queue, which is this
    # function's second event source.
    access=frozenset({_R, _W, _POST, _ANNOUNCE, _SETTLE, _RELAY, _MESH, _MAP}),
)
WORKERS = (PRESENCE_WORKER,)


def _frame_route(action: Action, *access: Access) -> Route:
    """The route of a protocol action: handlers/<snake_case>.py, function <PascalCase>.

    Every frame route counts its frames against the caller's rate limit (LIMITS), and
    refuses a caller whose home is no longer this cell (SHARD_MAP)."""
    module = "".join(f"_{c.lower()}" if c.isupper() else c for c in action.value)
    return Route(
        action.value,
        f"messenger.handlers.{module}.handler",
        action.value[0].upper() + action.value[1:],
        frozenset({*access, _LIMITS, _MAP}),
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "$connect",
        "messenger.handlers.connect.handler",
        "Connect",
        # Never a peer: watchers in other cells hear of it from the presence function.
        frozenset({_R, _W, _ANNOUNCE}),
        two_way=False,
    ),
    Route(
        "$disconnect",
        "messenger.handlers.disconnect.handler",
        "Disconnect",
        frozenset({_R, _W, _ANNOUNCE}),
        two_way=False,
    ),
    Route("$default", "messenger.handlers.default.handler", "Default", frozenset()),
    # Routes that post to connections learn of closed ones (410), and forget them: the
    # user may go offline then (ANNOUNCE).
    _frame_route(Action.SEND_MESSAGE, _R, _W, _QW, _POST, _PUSH, _ANNOUNCE, _RELAY, _MESH),
    _frame_route(Action.ACK, _R, _W, _QW, _POST, _ANNOUNCE, _RELAY, _MESH),
    _frame_route(Action.MARK_SEEN, _R, _W, _QW, _POST, _ANNOUNCE, _RELAY, _MESH),
    _frame_route(Action.SYNC, _R, _W, _QR, _POST, _ANNOUNCE),
    _frame_route(Action.GET_PRESENCE, _R, _W, _RELAY, _MESH),
    _frame_route(Action.GET_KEYS, _R, _RELAY, _MESH),
    _frame_route(Action.REGISTER_PUSH, _R, _W, _PUSH),
    _frame_route(Action.SET_PRESENCE_VISIBILITY, _R, _W),
    _frame_route(Action.SET_BLOCKED, _R, _W),
    _frame_route(Action.GET_SETTINGS, _R),
    # A removed device's queue is deleted (read to find it) and its connections closed.
    _frame_route(Action.SET_DEVICES, _R, _W, _QR, _QW, _POST, _ANNOUNCE),
)

ROUTES_BY_KEY = {route.key: route for route in ROUTES}


@dataclass(frozen=True)
class GatewayRoute:
    """A route API Gateway answers itself (a MOCK integration): no function runs and
    nothing is written, so its frame costs only the two API Gateway messages.

    `response` is the integration response's template: API Gateway's mapping-template
    language (VTL), of which it uses only `$stageVariables.NAME` and one
    `#if($stageVariables.NAME == "VALUE")...#{else}...#{end}` (the local emulator renders
    exactly that much).
    """

    key: str
    response: str


# What a stage starts with, before the first publish (a client ignores a dv it has seen).
INITIAL_STAGE_VARIABLES: dict[str, str] = {
    DIRECTORY_VERSION_STAGE_VARIABLE: "0",
    FENCED_STAGE_VARIABLE: "0",
}

# §2: `ping` is answered by API Gateway, from the stage: the cheapest keepalive there is.
# On a side a switch demoted (its stage's `fenced` is "1", docs/protocol.md §7 Fencing) it
# is answered `error` MOVED, as every frame the functions answer there: the client fetches
# the directory and moves, where before an idle one kept pinging the old side.
PING_FENCED = (
    '{"type":"error","code":"MOVED","message":"this side of the cell is not active: fetch '
    'the directory","ref":"ping"}'
)
PONG = '{"type":"pong","dv":$stageVariables.' + DIRECTORY_VERSION_STAGE_VARIABLE + "}"
GATEWAY_ROUTES: tuple[GatewayRoute, ...] = (
    GatewayRoute(
        Action.PING.value,
        f'#if($stageVariables.{FENCED_STAGE_VARIABLE} == "1"){PING_FENCED}#{{else}}{PONG}#{{end}}',
    ),
)
GATEWAY_ROUTES_BY_KEY = {route.key: route for route in GATEWAY_ROUTES}
assert not GATEWAY_ROUTES_BY_KEY.keys() & ROUTES_BY_KEY.keys()

# What peer cells invoke to reach this cell's users (docs/scale.md): only deployed, and only
# reachable, when the deployment has more than one cell.
RELAY = Function(
    handler="messenger.handlers.relay.handler",
    function_name="Relay",
    # ANNOUNCE: delivering what it stores may find a connection closed. RELAY: what
    # arrives for a range of shards that moved away is forwarded to its new home. MESH: it
    # checks each call's signature against the caller's published keys. LIMITS: each
    # caller's budget, and the registrations of peers' users from addresses it keeps.
    access=frozenset({_R, _W, _QW, _POST, _PUSH, _ANNOUNCE, _RELAY, _MESH, _LIMITS, _MAP}),
)
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
