"""Builds the object graph once per container: clients, tables, logic.

Handlers ask `services()` for what they need. Tests replace pieces through
`use_services(...)` (or by clearing the cache under moto) instead of patching modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from messenger.config import Settings, settings
from messenger.contract import RELAY_CALLS_PER_CALLER
from messenger.dal.blocks import Blocks
from messenger.dal.cell_generation import CellGeneration
from messenger.dal.cell_state import CellState
from messenger.dal.contacts import Contacts
from messenger.dal.device_lists import DeviceLists
from messenger.dal.directory_map import DirectoryShardMap
from messenger.dal.nonces import Nonces
from messenger.dal.profiles import Profiles
from messenger.dal.push_devices import PushDevices
from messenger.dal.queue import Queue
from messenger.dal.queue_counts import QueueCounts
from messenger.dal.rate_limits import RateLimits
from messenger.dal.relay_directory import RelayDirectory
from messenger.dal.server_keys import ServerKeys
from messenger.dal.shard_states import ShardStates
from messenger.dal.subscriptions import Subscriptions
from messenger.logic.catch_up import CatchUp
from messenger.logic.cell_view import CellView
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.connect_audience import ConnectAudience
from messenger.logic.epoch import CellEpoch
from messenger.logic.identity import Identity
from messenger.logic.linked_devices import LinkedDevices
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.messaging import Messaging
from messenger.logic.peers import Peers
from messenger.logic.presence import Presence
from messenger.logic.presence_changes import PresenceChanges
from messenger.logic.push import PushNotifier, PushRegistration
from messenger.logic.queue_caps import QueueCaps
from messenger.logic.rate_limit import RateLimiter
from messenger.logic.receipts import Receipts
from messenger.logic.registrations import RegistrationBudget
from messenger.logic.relay import RelayService
from messenger.logic.relay_callers import RelayCallers
from messenger.logic.sync_cursor import SyncCursors
from messenger.logic.user_settings import UserSettings
from messenger.logic.visibility import Visibility
from messenger.transport.connections import Connections
from messenger.transport.presence_events import PresenceAnnouncer, SettleQueue
from messenger.transport.push import SnsPush
from messenger.transport.relay import RelayClient
from messenger_protocol.mesh import RELAY_KEY_NAMES, relay_signing_key

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from nacl.signing import SigningKey

# Standard retry mode retries throttles with backoff; timeouts stay well inside the
# 29 s that API Gateway waits for an integration.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
    tcp_keepalive=True,
    # One invocation at a time on Lambda; the local emulator runs many in one process.
    max_pool_connections=50,
)


def management_client(endpoint_url: str) -> ApiGatewayManagementApiClient:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=CLIENT_CONFIG)


# Pushes go out before the sender's ack: a slow SNS gets little patience, since the
# message is stored whatever happens to its push.
SNS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=1,
    read_timeout=2,
    tcp_keepalive=True,
)


def sns_client() -> SNSClient:
    return boto3.client("sns", config=SNS_CLIENT_CONFIG)


# A peer cell's Relay stores a message (and may push) before it answers, in well under a
# second. Each side gets two tries of 2 s to connect and 4 s to answer (12 s at worst), so
# that a hung primary still leaves time to try the standby within the 29 s API Gateway
# gives the function that waits (2 x 12 s = 24 s; docs/availability.md Fencing). Handing a
# presence change to the presence function (an Event invoke) is answered at once.
LAMBDA_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=2,
    read_timeout=4,
    tcp_keepalive=True,
    max_pool_connections=50,
)


def lambda_client() -> LambdaClient:
    return boto3.client("lambda", config=LAMBDA_CLIENT_CONFIG)


# The directory's bucket, for the peers' Relay records and the signed shard map: a read
# now and then (dal/relay_directory.py, dal/directory_map.py).
S3_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=2,
    read_timeout=3,
    tcp_keepalive=True,
)


def s3_client(region: str) -> S3Client:
    return boto3.client("s3", region_name=region or None, config=S3_CLIENT_CONFIG)


def sqs_client() -> SQSClient:
    """The presence function's: it sends a flap to its settle queue, once in a while."""
    return boto3.client("sqs", config=CLIENT_CONFIG)


@dataclass
class Services:
    settings: Settings
    dynamodb: DynamoDBClient
    clock: Clock = field(default_factory=Clock)
    management_client_factory: Callable[[str], Any] = management_client
    sns_client_factory: Callable[[], Any] = sns_client
    lambda_client_factory: Callable[[], Any] = lambda_client
    s3_client_factory: Callable[[str], Any] = s3_client
    sqs_client_factory: Callable[[], Any] = sqs_client
    _connections: dict[str, Connections] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = self.settings.users_table
        self.profiles = Profiles(self.dynamodb, table)
        self.nonces = Nonces(self.dynamodb, table)
        self.subscriptions = Subscriptions(self.dynamodb, table)
        self.contacts = Contacts(self.dynamodb, table)
        self.push_devices = PushDevices(self.dynamodb, table)
        self.blocks = Blocks(self.dynamodb, table)
        self.device_lists = DeviceLists(self.dynamodb, table)
        self.visibility = Visibility(self.contacts, self.blocks)
        self.user_settings = UserSettings(
            self.profiles, self.contacts, self.blocks, self.subscriptions, self.clock
        )
        self.queue = Queue(self.dynamodb, self.settings.queue_table)
        self.rate_limits = RateLimits(self.dynamodb, self.settings.limits_table)
        self.queue_caps = QueueCaps(
            QueueCounts(self.dynamodb, self.settings.limits_table),
            self.settings.queue_cap_messages,
            self.settings.queue_cap_per_sender,
        )
        # Made once per container: it keeps the cursor key once read.
        self.sync_cursors = SyncCursors(ServerKeys(self.dynamodb, table))
        # Made once per container too: it keeps the generation for up to 10 s.
        self.epoch = CellEpoch(
            CellGeneration(self.dynamodb, table), self.settings.cell_epoch, self.clock
        )
        # Made once per container: it keeps the cell's active side for up to 2 s.
        self.cell_view = CellView(
            CellState(self.dynamodb, table), self.settings.cell_side, self.clock
        )
        cell = self.settings.cell
        # The directory's second region, read when the first's bucket cannot be.
        directory_fallback = cell.mesh.fallback(self.s3_client_factory)
        # Made once per container: it keeps the published shard map for a minute.
        self.shard_maps = (
            DirectoryShardMap(
                lambda: self.s3_client_factory(cell.mesh.region),
                cell.mesh.name,
                cell.mesh.owner,
                cell.directory_key,
                self.clock,
                fallback=directory_fallback,
            )
            if cell.reads_directory
            else None
        )
        # Made once per container: it keeps the moves of shards for up to 2 s.
        self.cells = Cells(
            cell, ShardStates(self.dynamodb, table), self.clock, shard_maps=self.shard_maps
        )
        # Made once per container: it keeps the peers' records for a minute.
        self.relay_directory = RelayDirectory(
            lambda: self.s3_client_factory(cell.mesh.region),
            cell.mesh.name,
            cell.mesh.owner,
            self.clock,
            fallback=directory_fallback,
        )
        self._relay_key: SigningKey | None = None
        self.peers = Peers(
            self.cells,
            RelayClient(
                self.lambda_client_factory,
                cell.cell_id,
                self.relay_directory,
                self.relay_signing_key,
                self.clock,
            ),
        )
        self.relay_callers = RelayCallers(
            self.cells, self.relay_directory, self.rate_limits, self.clock, RELAY_CALLS_PER_CALLER
        )
        self.registrations = RegistrationBudget(
            self.rate_limits,
            self.cells,
            self.peers,
            self.clock,
            self.settings.registrations_per_ip_per_hour,
        )
        self.identity = Identity(
            self.profiles,
            self.nonces,
            self.registrations,
            self.clock,
            self.cells,
            self.peers,
            ConnectAudience(
                self.settings.connect_endpoints, accept_v11=self.settings.accept_v11_connect
            ),
        )
        self.rate_limiter = RateLimiter(self.rate_limits, self.clock, self.settings.rate_limit)
        self.announcer = PresenceAnnouncer(
            self.lambda_client_factory, self.settings.presence_function
        )
        self.settle_queue = SettleQueue(
            self.sqs_client_factory, self.settings.presence_settle_queue
        )
        self.push = SnsPush(self.sns_client_factory)
        self.push_registration = PushRegistration(
            self.profiles, self.push_devices, self.push, self.clock, self.settings.push_apps
        )
        # Told of whatever is queued for a user no live connection took.
        self.offline = PushNotifier(
            self.push_devices, self.push, self.clock, self.settings.push_min_interval_seconds
        )

    def relay_signing_key(self) -> SigningKey:
        """This side's relay key, read once per container from its Users table, where its
        record writer made it at deploy (messenger_protocol.mesh)."""
        if self._relay_key is None:
            seed = ServerKeys(self.dynamodb, self.settings.users_table).find(
                RELAY_KEY_NAMES[self.settings.cell_side]
            )
            if seed is None:
                raise RuntimeError("this side has no relay key: its relay record is not written")
            self._relay_key = relay_signing_key(seed)
        return self._relay_key

    def connections(self, endpoint: str) -> Connections:
        """The @connections sender for an API stage, made once per endpoint."""
        if endpoint not in self._connections:
            self._connections[endpoint] = Connections(self.management_client_factory(endpoint))
        return self._connections[endpoint]

    def live(self, endpoint: str) -> LiveDelivery:
        """Delivery to the connections of an API stage, and their opening and closing."""
        return LiveDelivery(
            self.profiles,
            self.subscriptions,
            self.connections(endpoint),
            self.clock,
            self.announcer,
            endpoint,
        )

    def linked_devices(self, endpoint: str) -> LinkedDevices:
        """setDevices: removed devices' connections on that API stage are closed."""
        return LinkedDevices(
            self.profiles,
            self.device_lists,
            self.queue,
            lambda: self.live(endpoint),
            self.offline,
            self.queue_caps,
            self.clock,
        )

    def messaging(self, endpoint: str) -> Messaging:
        return Messaging(
            self.profiles,
            self.queue,
            self.live(endpoint),
            self.clock,
            self.settings.message_ttl_seconds,
            self.offline,
            self.cells,
            self.peers,
            self.queue_caps,
            self.blocks,
            self.epoch,
        )

    def receipts(self, endpoint: str) -> Receipts:
        return Receipts(
            self.profiles,
            self.queue,
            self.live(endpoint),
            self.clock,
            self.settings.message_ttl_seconds,
            self.rate_limiter,
            self.cells,
            self.peers,
            self.epoch,
            self.queue_caps,
            self.blocks,
        )

    def catch_up(self, endpoint: str) -> CatchUp:
        return CatchUp(
            self.queue,
            self.sync_cursors,
            self.live(endpoint),
            self.clock,
            self.epoch,
        )

    def relay(self) -> RelayService:
        """What peer cells may ask; live deliveries go to this cell's own API stage."""
        endpoint = self.settings.connections_endpoint
        if endpoint is None:
            raise RuntimeError("the Relay needs CONNECTIONS_ENDPOINT: it has no API event")
        return RelayService(
            self.cells,
            self.relay_callers,
            lambda: self.messaging(endpoint),
            lambda: self.receipts(endpoint),
            self.identity,
            lambda: self.presence(endpoint),
            lambda: self.presence_changes(endpoint),
            self.peers,
            self.registrations,
        )

    def presence(self, endpoint: str) -> Presence:
        return Presence(
            self.profiles,
            self.subscriptions,
            self.contacts,
            self.visibility,
            self.clock,
            self.announcer,
            endpoint,
            self.cells,
            self.peers,
        )

    def presence_changes(self, endpoint: str) -> PresenceChanges:
        """The presence function's logic, posting to the watchers on that API stage (and
        handing the change to the cells of watchers elsewhere)."""
        return PresenceChanges(
            self.profiles,
            self.subscriptions,
            self.visibility,
            self.live(endpoint),
            self.clock,
            self.peers,
            self.settle_queue,
        )


_override: Services | None = None
# Per invocation, where one process serves several cells (the local emulator, the tests):
# the Services of the cell whose function runs. Unset on Lambda.
_current: ContextVar[Services | None] = ContextVar("messenger_services", default=None)


@cache
def _default_services() -> Services:
    return Services(settings=settings(), dynamodb=boto3.client("dynamodb", config=CLIENT_CONFIG))


def services() -> Services:
    current = _current.get()
    if current is not None:
        return current
    return _override if _override is not None else _default_services()


@contextmanager
def serving(replacement: Services) -> Iterator[None]:
    """Run the handlers called inside the block (in this thread) with these Services."""
    token = _current.set(replacement)
    try:
        yield
    finally:
        _current.reset(token)


def use_services(replacement: Services | None) -> None:
    """Swap the object graph (tests, the local emulator); None goes back to the default."""
    global _override
    _override = replacement
    _default_services.cache_clear()
    settings.cache_clear()
