"""AWS calls per operation, counted with botocore's event hooks on the real handlers.

Every operation is measured twice: with 10 and with 10,000 registered users. The counts
must be identical (nothing grows with the user base). The baseline, measured in the
same run on the same moto tables, is the design of AWS's simple-websockets-chat-app
sample: find the recipient's connections by scanning a connections table.

An operation's own counts never include the presence function it hands a change to (its
one `lambda.Invoke`): that function runs on its own, and is measured on its own.

A send between users of two cells runs on two cells' tables (messenger_local.cells_harness):
it is counted in each cell, with the one Relay `Invoke` between them, next to the same
send within one cell.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.environment import use_bench_environment
from bench.protocol_client import BenchUser
from messenger.contract import PRESENCE_FLAP_WINDOW_MS
from messenger.dal.profiles import Profile, profile_item
from messenger.logic.registrations import registration_source
from messenger_client.devices import with_device
from messenger_client.keystore import Identity
from messenger_local.cells_harness import CellsUnderTest, cells_harness, id_homed_in
from messenger_local.harness import API, TABLE_NAMES, Connection, Harness, harness
from messenger_protocol.connect import canonical_endpoint, signed_connect_query
from messenger_protocol.devices import DeviceList, LinkCode, seal_for_devices
from messenger_protocol.frames import (
    Ack,
    GetPresence,
    GetSettings,
    MarkSeen,
    SendMessage,
    SetBlocked,
    SetDevices,
    SetPresenceVisibility,
    Sync,
)
from messenger_protocol.names import Action, ErrorCode, FrameType, PresenceVisibility


class CallCounter:
    """Counts every AWS call the functions make, by service and operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bytes_written: Counter[str] = Counter()

    def hook(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._count)
        return client

    def _count(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        service = model.service_model.service_name
        self.calls[f"{service}.{model.name}"] += 1

    @contextmanager
    def measuring(self) -> Iterator[Counter[str]]:
        self.calls.clear()
        result: Counter[str] = Counter()
        yield result
        result.update(self.calls)


def instrument(h: Harness, counter: CallCounter) -> None:
    counter.hook(h.services.dynamodb)
    factory = h.services.management_client_factory
    h.services.management_client_factory = lambda endpoint: counter.hook(factory(endpoint))
    h.services._connections.clear()
    sns_factory = h.services.sns_client_factory
    h.services.push._client_factory = lambda: counter.hook(sns_factory())
    # Each operation is counted alone; the presence functions it invoked run after it.
    h.run_invocations_at_once = False


@contextmanager
def counting(h: Harness, c: CallCounter) -> Iterator[Counter[str]]:
    """The calls of what runs inside; then the presence functions it invoked, uncounted.

    Its Lambda Invokes are counted as the harness answered them: the harness's own hook
    answers an Invoke before the counter's (more general) one would see it.
    """
    invoked = len(h.invokes.invoked)
    with c.measuring() as calls:
        yield calls
    if len(h.invokes.invoked) > invoked:
        calls["lambda.Invoke"] += len(h.invokes.invoked) - invoked
    h.run_invocations()


def seed_users(h: Harness, count: int, user_ids: list[str] | None = None) -> None:
    """Register `count` users (user0000000...) or those named directly (BatchWriteItem),
    as if they had connected once."""
    signer = BenchUser.generate("seed").public_keys
    names = user_ids or [f"user{i:07d}" for i in range(count)]
    requests = [
        {
            "PutRequest": {
                "Item": profile_item(
                    Profile(
                        user_id=user_id,
                        sign_key=signer.sign_key,
                        box_key=signer.box_key,
                        created_at=h.clock.now_ms(),
                    )
                )
            }
        }
        for user_id in names
    ]
    for start in range(0, len(requests), 25):
        h.dynamodb.batch_write_item(
            RequestItems={TABLE_NAMES["Users"]: requests[start : start + 25]}
        )


@dataclass
class Scenario:
    name: str
    run: Callable[[Harness, CallCounter], Counter[str]]


def _fresh_pair(h: Harness) -> tuple[BenchUser, BenchUser]:
    suffix = str(len(h.posts.attempts)) + str(h.clock.now_us())[-6:]
    return BenchUser.generate(f"alice{suffix}"), BenchUser.generate(f"bob{suffix}")


def connect_new(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    with counting(h, c) as calls:
        h.connect(alice)
    return calls


def connect_known(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    h.disconnect(h.connect(alice))
    with counting(h, c) as calls:
        h.connect(alice, with_keys=False)
    return calls


def renew_connection(h: Harness, c: CallCounter) -> Counter[str]:
    """The SDK's 2-hour renewal, make-before-break: a new connection of the same device
    while the old one is open, then the old one's close. The user never goes offline, so
    neither end is a presence change: no presence function is invoked (the fan-out to
    watchers is cut on a reconnect), unlike a connect or disconnect of a user's only
    connection."""
    alice, _ = _fresh_pair(h)
    old = h.connect(alice)
    with counting(h, c) as calls:
        h.connect(alice, with_keys=False)
        h.disconnect(old)
    return calls


def disconnect(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    with counting(h, c) as calls:
        h.disconnect(a)
    return calls


def send_message(
    h: Harness, c: CallCounter, recipient_connections: int, blocks: tuple[str, ...] = ()
) -> Counter[str]:
    """alice sends to bob; bob blocks `blocks` first (the sender may be among them:
    "alice")."""
    alice, bob = _fresh_pair(h)
    a = h.connect(alice)
    devices = [h.connect(bob) for _ in range(recipient_connections)]
    if blocks:
        blocked = [alice.user_id if who == "alice" else who for who in blocks]
        setter = devices[0] if devices else h.connect(bob)
        h.send(setter, SetBlocked(add=blocked).to_wire())
        if not devices:
            h.disconnect(setter)
    if not devices:
        h.disconnect(h.connect(bob))
    frame = h.message(a, bob, "hello", "msg-bench-0001")
    with counting(h, c) as calls:
        reply = h.send(a, frame)
    assert reply is not None and reply["type"] == FrameType.ACK, reply
    return calls


@dataclass
class BenchDevice:
    """A linked device of a bench user (docs/protocol.md §8): its own keys, connecting in
    the v1.2 form."""

    user: BenchUser
    device_id: str
    # The device's own keys, made by the SDK as a device makes them.
    keys: Identity = field(init=False)

    def __post_init__(self) -> None:
        self.keys = Identity.generate(self.user.user_id)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def link_code(self) -> LinkCode:
        """The code this device shows, for device 1 to add it (§8)."""
        public = self.keys.public_keys
        return LinkCode(
            user_id=self.user_id,
            device_id=self.device_id,
            sign_key=public.sign_key,
            box_key=public.box_key,
        )

    def connect_query(self, *, ts: int | None = None, **_: Any) -> dict[str, str]:
        aud = canonical_endpoint(f"wss://{API.domain_name}/{API.stage}")
        now = time.time() if ts is None else ts
        return signed_connect_query(
            self.keys.signing_key, self.user_id, now=now, aud=aud, device_id=self.device_id
        )

    def encrypt_for(self, peer: Any, text: str) -> tuple[str, str]:
        raise NotImplementedError("a linked device seals for devices (seal_for_devices)")


def link_devices(
    h: Harness, primary: Connection, user: BenchUser, count: int
) -> tuple[DeviceList, list[Connection]]:
    """Give `user` `count` devices (device 1, connected as `primary`, and count - 1 linked
    ones, each connected once): the signed list, and a connection of each device."""
    keys = user.public_keys
    linked = [BenchDevice(user, f"d{n}") for n in range(2, count + 1)]
    # As device 1 links them: the client's own steps (messenger_client.devices).
    listing = DeviceList.unlinked(user.user_id, keys.sign_key, keys.box_key)
    for device in linked:
        listing = with_device(listing, device.link_code())
    listing = listing.sign(user.identity.signing_key)
    if linked:
        assert h.send(primary, SetDevices.of(listing).to_wire())["type"] == FrameType.DEVICES
    return listing, [primary, *(h.connect(device) for device in linked)]


def send_to_devices(h: Harness, c: CallCounter, devices: int) -> Counter[str]:
    """alice (one device) sends to bob, who has `devices` devices, each online once: the
    §8 form (sealed once, a key per device) from 2 devices on, the v1.1 form for one."""
    alice, bob = _fresh_pair(h)
    a, b = h.connect(alice), h.connect(bob)
    bobs, _ = link_devices(h, b, bob, devices)
    if devices == 1:
        frame = h.message(a, bob, "hello", "msg-bench-0001")
    else:
        sealed = seal_for_devices(b"hello", alice.identity.box_private_key, list(bobs.devices))
        frame = SendMessage(
            body=sealed.body,
            message_id="msg-bench-0001",
            to=bob.user_id,
            nonce=sealed.nonce,
            sent_at=1,
            devices=bobs.version,
            copies=sealed.copies,
        ).to_wire()
    with counting(h, c) as calls:
        reply = h.send(a, frame)
    assert reply is not None and reply["type"] == FrameType.ACK, reply
    return calls


def _queue_for(h: Harness, count: int) -> tuple[Connection, Connection]:
    alice, bob = _fresh_pair(h)
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    for i in range(count):
        h.send(a, h.message(a, bob, "x", f"msg-bench-{i:05d}"))
        h.clock.advance(0.5)  # a steady sender, inside the rate limit
    b = h.connect(bob)
    return a, b


def ack_queued(h: Harness, c: CallCounter, count: int) -> Counter[str]:
    _, b = _queue_for(h, count)
    h.send(b, Sync().to_wire())
    ids = [f["id"] for f in h.posts.of_type(b.connection_id, FrameType.MESSAGE)]
    with c.measuring() as calls:
        h.send(b, Ack(ids=ids).to_wire())
    return calls


def sync_queued(h: Harness, c: CallCounter, count: int, batch: bool) -> Counter[str]:
    _, b = _queue_for(h, count)
    # A first round makes the cursor key (once per deployment) and reads it (once per
    # container): the page measured is what every later first page costs.
    h.send(b, Sync(batch=batch).to_wire())
    with counting(h, c) as calls:
        h.send(b, Sync(batch=batch).to_wire())
    return calls


# The frames of one message's life (`message_life`): infra/throttling.py sizes the stage
# throttle from them and from the posts they cause.
MESSAGE_LIFE_FRAMES = 3


def message_life(h: Harness, c: CallCounter) -> Counter[str]:
    """One message's whole life: alice sends it, bob's device gets it live and acks it,
    alice gets the `delivered` receipt live and acks that (3 frames)."""
    alice, bob = _fresh_pair(h)
    a, b = h.connect(alice), h.connect(bob)
    total: Counter[str] = Counter()
    with counting(h, c) as calls:
        h.send(a, h.message(a, bob, "hello", "msg-life-0001"))
    total += calls
    [message] = h.posts.of_type(b.connection_id, FrameType.MESSAGE)
    with counting(h, c) as calls:
        h.send(b, Ack(ids=[message["id"]]).to_wire())
    total += calls
    [receipt] = h.posts.of_type(a.connection_id, FrameType.RECEIPT)
    with counting(h, c) as calls:
        h.send(a, Ack(ids=[receipt["id"]]).to_wire())
    total += calls
    return total


def _watched_by(h: Harness, watchers: int) -> tuple[BenchUser, list[Connection]]:
    """A user (offline for a while: their next connect is no flap) and that many
    connections subscribed to their presence."""
    alice, _ = _fresh_pair(h)
    h.disconnect(h.connect(alice))
    # That close, a moment after the connect, is a flap: told once it has settled, and
    # then a quiet spell.
    h.clock.advance(PRESENCE_FLAP_WINDOW_MS / 1000 + 1)
    h.run_invocations()
    connections = []
    for n in range(watchers):
        watcher = h.connect(BenchUser.generate(f"w{n}-{alice.user_id}"))
        h.send(watcher, GetPresence(user_ids=[alice.user_id], subscribe=True).to_wire())
        connections.append(watcher)
    h.run_invocations()
    return alice, connections


def presence_function(h: Harness, c: CallCounter, watchers: int) -> Counter[str]:
    alice, _ = _watched_by(h, watchers)
    h.connect(alice)  # hands the change on: the presence function runs next, uncounted
    with c.measuring() as calls:
        assert h.run_invocations() == 1
    return calls


def connect_watched_by_10(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _watched_by(h, 10)
    with counting(h, c) as calls:
        h.connect(alice, with_keys=False)
    return calls


def mark_seen(h: Harness, c: CallCounter) -> Counter[str]:
    alice, bob = _fresh_pair(h)
    a, b = h.connect(alice), h.connect(bob)
    with counting(h, c) as calls:
        h.send(b, MarkSeen(to=alice.user_id, message_ids=["msg-bench-0001"]).to_wire())
    assert h.posts.of_type(a.connection_id, FrameType.RECEIPT)
    return calls


def visibility(h: Harness, c: CallCounter, contacts: int, again: bool) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    frame = SetPresenceVisibility(
        visibility=PresenceVisibility.CONTACTS,
        contacts=[f"contact{n:04d}" for n in range(contacts)],
    ).to_wire()
    if again:
        h.send(a, frame)
    with counting(h, c) as calls:
        assert h.send(a, frame)["type"] == FrameType.PRESENCE_VISIBILITY
    return calls


def block(h: Harness, c: CallCounter, count: int) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    frame = SetBlocked(add=[f"x{i}" for i in range(count)]).to_wire()
    with counting(h, c) as calls:
        reply = h.send(a, frame)
    assert reply is not None and reply["type"] == FrameType.BLOCKED, reply
    return calls


def settings(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    contacts = SetPresenceVisibility(visibility=PresenceVisibility.CONTACTS, contacts=["bob"])
    h.send(a, contacts.to_wire())
    h.send(a, SetBlocked(add=[f"x{i}" for i in range(10)]).to_wire())
    with counting(h, c) as calls:
        reply = h.send(a, GetSettings().to_wire())
    assert reply is not None and reply["type"] == FrameType.SETTINGS, reply
    return calls


def rate_limited(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    # `ping` is answered by API Gateway, uncounted (docs/protocol.md §3): a routed frame.
    frame = SetPresenceVisibility(visibility=PresenceVisibility.CONTACTS, contacts=[]).to_wire()
    for _ in range(h.settings.rate_limit(Action.SET_PRESENCE_VISIBILITY).burst):
        h.send(a, frame)
    with counting(h, c) as calls:
        assert h.send(a, frame)["code"] == ErrorCode.RATE_LIMITED
    return calls


def posts_of(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("apigatewaymanagementapi."))


def get_presence(h: Harness, c: CallCounter, registered: int, unknown: int) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    known = [f"{alice.user_id}-{n}" for n in range(registered)]
    seed_users(h, len(known), known)
    asked = [*known, *(f"nobody-{alice.user_id}-{n}" for n in range(unknown))]
    with counting(h, c) as calls:
        h.send(a, GetPresence(user_ids=asked, subscribe=True).to_wire())
    return calls


SAME_CELL_SEND = "sendMessage, recipient online, 1 connection"

SCENARIOS = [
    Scenario("connect, new user (authorizer + $connect)", connect_new),
    Scenario("connect, known user (authorizer + $connect)", connect_known),
    Scenario("disconnect", disconnect),
    Scenario(
        "renewal: connect, then the old one's disconnect (make-before-break)", renew_connection
    ),
    Scenario(SAME_CELL_SEND, partial(send_message, recipient_connections=1)),
    Scenario(
        "sendMessage, recipient online, 3 connections",
        partial(send_message, recipient_connections=3),
    ),
    Scenario("sendMessage, recipient offline", partial(send_message, recipient_connections=0)),
    Scenario("sendMessage, recipient with 1 device, online", partial(send_to_devices, devices=1)),
    Scenario("sendMessage, recipient with 2 devices, online", partial(send_to_devices, devices=2)),
    Scenario("sendMessage, recipient with 3 devices, online", partial(send_to_devices, devices=3)),
    Scenario(
        "sendMessage, recipient online, blocks 10 others",
        partial(send_message, recipient_connections=1, blocks=tuple(f"x{i}" for i in range(10))),
    ),
    Scenario(
        "sendMessage from a blocked sender (acked, dropped)",
        partial(send_message, recipient_connections=1, blocks=("alice",)),
    ),
    Scenario("setBlocked, add 10", partial(block, count=10)),
    Scenario("getSettings (contacts, 10 blocked)", settings),
    Scenario("ack, 1 id", partial(ack_queued, count=1)),
    Scenario("ack, 100 ids", partial(ack_queued, count=100)),
    Scenario("sync, 10 items", partial(sync_queued, count=10, batch=False)),
    Scenario(
        "sync, 1,000 queued: first page, one frame per item",
        partial(sync_queued, count=1000, batch=False),
    ),
    Scenario("sync, 1,000 queued: first page, batch", partial(sync_queued, count=1000, batch=True)),
    Scenario("getPresence, 1 user, subscribe", partial(get_presence, registered=1, unknown=0)),
    Scenario(
        "getPresence, 100 users (99 unknown), subscribe",
        partial(get_presence, registered=1, unknown=99),
    ),
    Scenario("getPresence, 100 users, subscribe", partial(get_presence, registered=100, unknown=0)),
    Scenario("markSeen", mark_seen),
    Scenario("any frame refused RATE_LIMITED", rate_limited),
    Scenario("setPresenceVisibility, 100 contacts", partial(visibility, contacts=100, again=False)),
    Scenario(
        "setPresenceVisibility, the same again", partial(visibility, contacts=100, again=True)
    ),
    Scenario("connect, known user watched by 10 (authorizer + $connect)", connect_watched_by_10),
    Scenario(
        "presence function: a change told to 1 watcher", partial(presence_function, watchers=1)
    ),
    Scenario(
        "presence function: a change told to 10 watchers", partial(presence_function, watchers=10)
    ),
    Scenario(f"message life ({MESSAGE_LIFE_FRAMES} frames: send, ack, receipt ack)", message_life),
]


@dataclass
class CrossCellSend:
    """A sendMessage from a user of c0 to an online user of c1: each cell's calls. The
    sender's cell's count includes the Relay Invoke; the recipient's cell's is its Relay's."""

    sender_cell: Counter[str]
    home_cell: Counter[str]

    @property
    def total(self) -> Counter[str]:
        return self.sender_cell + self.home_cell

    @property
    def invocations(self) -> int:
        """Lambda invocations: the sender's route function and the peer's Relay."""
        return 2


def cross_cell_send() -> CrossCellSend:
    alice = BenchUser.generate(id_homed_in("c0", "alice"))
    bob = BenchUser.generate(id_homed_in("c1", "bob"))
    with cells_harness(registrations_per_ip_per_hour=10**9) as cells:
        sender, home = cells["c0"], cells["c1"]
        a = sender.connect(alice)
        home.connect(bob)
        # Each container reads its cell's epoch once per 10 s (logic/epoch.py): warm, as
        # the same-cell send it is compared with is.
        sender.services.epoch.current()
        home.services.epoch.current()
        # And once per container its relay key, and per minute the peer's Relay records
        # (docs/scale.md "The mesh"): warm too.
        sender.services.relay_signing_key()
        sender.services.relay_directory.sides_of("c1")
        home.services.relay_directory.sides_of("c0")
        in_sender, in_home = CallCounter(), CallCounter()
        instrument(sender, in_sender)
        instrument(home, in_home)
        relayed = len(cells.invokes.calls)
        frame = sender.message(a, bob, "hello", "msg-cross-0001")
        with in_sender.measuring() as sender_calls, in_home.measuring() as home_calls:
            reply = sender.send(a, frame)
        assert reply is not None and reply["type"] == FrameType.ACK, reply
        # The Relay Invoke is answered by the cells' own hook, before the counter's.
        sender_calls["lambda.Invoke"] += len(cells.invokes.calls) - relayed
    return CrossCellSend(sender_calls, home_calls)


def scan_design_send(h: Harness, c: CallCounter, users: int) -> Counter[str]:
    """Baseline: the sample app's connections table, scanned to find the recipient."""
    table = "baseline-connections"
    if table not in h.dynamodb.list_tables()["TableNames"]:
        h.dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        )
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "connectionId": {"S": f"conn{i:07d}="},
                        "userId": {"S": f"user{i:07d}"},
                    }
                }
            }
            for i in range(users)
        ]
        for start in range(0, len(items), 25):
            h.dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})
    c.hook(h.dynamodb)
    with c.measuring() as calls:
        paginator = h.dynamodb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=table,
            FilterExpression="userId = :u",
            ExpressionAttributeValues={":u": {"S": "user0000003"}},
        ):
            page.get("Items")
    h.dynamodb.meta.events.unregister("before-call", c._count)
    return calls


def summary(calls: Counter[str]) -> str:
    dynamo = sum(n for op, n in calls.items() if op.startswith("dynamodb."))
    posts = posts_of(calls)
    sns = sum(n for op, n in calls.items() if op.startswith("sns."))
    invokes = sum(n for op, n in calls.items() if op.startswith("lambda."))
    detail = ", ".join(f"{op.split('.', 1)[1]}x{n}" for op, n in sorted(calls.items()))
    return f"{dynamo:>3} DynamoDB  {posts:>4} post  {sns:>2} SNS  {invokes:>1} Invoke   ({detail})"


def measure(users: int) -> dict[str, Counter[str]]:
    results: dict[str, Counter[str]] = {}
    # Every bench user registers from one address: no per-source limit here.
    with harness(registrations_per_ip_per_hour=10**9) as h:
        seed_users(h, users)
        counter = CallCounter()
        instrument(h, counter)
        for scenario in SCENARIOS:
            results[scenario.name] = scenario.run(h, counter)
        results["BASELINE scan design: find recipient's connections"] = scan_design_send(
            h, CallCounter(), users
        )
    return results


# --- across cells (docs/protocol.md §6): two cells, the Relay invoked through boto3's lambda ---


@dataclass
class CellCalls:
    """An operation's calls in the caller's cell (with its Relay invokes) and in the peer."""

    caller: Counter[str]
    peer: Counter[str]


@contextmanager
def counting_cells(cells: CellsUnderTest, counters: dict[str, CallCounter]) -> Iterator[CellCalls]:
    """The calls of what runs inside, per cell; the presence functions it invoked (and
    the Relay calls they make) run after it, uncounted."""
    relay_calls = len(cells.invokes.calls)
    result = CellCalls(Counter(), Counter())
    with counters["c0"].measuring() as caller, counters["c1"].measuring() as peer:
        yield result
    result.caller.update(caller)
    result.peer.update(peer)
    if len(cells.invokes.calls) > relay_calls:
        result.caller["lambda.Invoke"] += len(cells.invokes.calls) - relay_calls
    for cell in ("c0", "c1"):
        cells[cell].run_invocations()


def _homed_in(cell: str, name: str) -> BenchUser:
    return BenchUser.generate(id_homed_in(cell, name))


def _cell_pair(cells: CellsUnderTest, n: int) -> tuple[BenchUser, BenchUser, BenchUser]:
    """alice and carol at home in c0, bob in c1 (fresh ids for each scenario)."""
    return _homed_in("c0", f"alice{n}"), _homed_in("c0", f"carol{n}"), _homed_in("c1", f"bob{n}")


def same_cell_send(cells: CellsUnderTest, counters: dict[str, CallCounter], n: int) -> CellCalls:
    alice, carol, _ = _cell_pair(cells, n)
    a = cells["c0"].connect(alice)
    cells["c0"].connect(carol)
    frame = cells["c0"].message(a, carol, "hello", "msg-bench-0001")
    with counting_cells(cells, counters) as calls:
        assert cells["c0"].send(a, frame)["type"] == FrameType.ACK
    return calls


def cross_ack(cells: CellsUnderTest, counters: dict[str, CallCounter], n: int) -> CellCalls:
    """bob (c0 here: the acking side is the caller) acks a message from a user of c1."""
    reader, sender = _homed_in("c0", f"reader{n}"), _homed_in("c1", f"sender{n}")
    r, s = cells["c0"].connect(reader), cells["c1"].connect(sender)
    cells["c1"].send(s, cells["c1"].message(s, reader, "hello", "msg-bench-0001"))
    [message] = cells["c0"].posts.of_type(r.connection_id, FrameType.MESSAGE)
    with counting_cells(cells, counters) as calls:
        cells["c0"].send(r, Ack(ids=[message["id"]]).to_wire())
    assert cells["c1"].posts.of_type(s.connection_id, FrameType.RECEIPT)
    return calls


def cross_mark_seen(cells: CellsUnderTest, counters: dict[str, CallCounter], n: int) -> CellCalls:
    reader, sender = _homed_in("c0", f"reader{n}"), _homed_in("c1", f"sender{n}")
    r, s = cells["c0"].connect(reader), cells["c1"].connect(sender)
    frame = MarkSeen(to=sender.user_id, message_ids=["msg-bench-0001"]).to_wire()
    with counting_cells(cells, counters) as calls:
        cells["c0"].send(r, frame)
    assert cells["c1"].posts.of_type(s.connection_id, FrameType.RECEIPT)
    return calls


def cross_get_presence(
    cells: CellsUnderTest, counters: dict[str, CallCounter], n: int
) -> CellCalls:
    alice, _, bob = _cell_pair(cells, n)
    cells["c1"].connect(bob)
    a = cells["c0"].connect(alice)
    frame = GetPresence(user_ids=[bob.user_id], subscribe=True).to_wire()
    with counting_cells(cells, counters) as calls:
        assert cells["c0"].send(a, frame)["users"][0]["online"] is True
    return calls


def address_counted_in(cells: CellsUnderTest, cell: str) -> str:
    """An IPv4 address whose registrations `cell` counts (docs/limits.md)."""
    for n in range(1, 255):
        address = f"198.51.100.{n}"
        if cells[cell].services.cells.home_of(registration_source(address).shard_key) == cell:
            return address
    raise RuntimeError(f"no address of 198.51.100.0/24 is counted in {cell}")


def registration(
    cells: CellsUnderTest, counters: dict[str, CallCounter], n: int, counted_in: str
) -> CellCalls:
    """A new user of c0 registers (the authorizer) from an address `counted_in` keeps."""
    user = _homed_in("c0", f"new{n}")
    address = address_counted_in(cells, counted_in)
    query = user.connect_query(ts=cells["c0"].clock.now_s(), aud=cells["c0"].endpoint)
    with counting_cells(cells, counters) as calls:
        decision = cells["c0"].authorize(query, source_ip=address)
    assert decision["policyDocument"]["Statement"][0]["Effect"] == "Allow", decision
    return calls


def measure_cells() -> dict[str, CellCalls]:
    """ack, markSeen and getPresence across cells (cross_cell_send measures a send),
    and a send between two users of one cell of the two, which costs what it does alone."""
    results: dict[str, CellCalls] = {}
    with cells_harness(registrations_per_ip_per_hour=10**9) as cells:
        counters = {cell: CallCounter() for cell in ("c0", "c1")}
        for cell, counter in counters.items():
            instrument(cells[cell], counter)
        scenarios: list[tuple[str, Callable[[int], CellCalls]]] = [
            (
                "sendMessage, same cell (of 2), online",
                lambda n: same_cell_send(cells, counters, n),
            ),
            ("ack, 1 id, sender in the other cell", lambda n: cross_ack(cells, counters, n)),
            ("markSeen, sender in the other cell", lambda n: cross_mark_seen(cells, counters, n)),
            (
                "getPresence, 1 user of the other cell, subscribe",
                lambda n: cross_get_presence(cells, counters, n),
            ),
            (
                "registration, address counted in the same cell",
                lambda n: registration(cells, counters, n, "c0"),
            ),
            (
                "registration, address counted in the other cell",
                lambda n: registration(cells, counters, n, "c1"),
            ),
        ]
        for n, (name, run) in enumerate(scenarios):
            results[name] = run(n)
    return results


def main(argv: list[str] | None = None) -> int:
    sizes = (10, 10_000)
    runs = {size: measure(size) for size in sizes}
    width = max(len(name) for name in runs[sizes[0]])
    print("AWS calls per operation (counted with botocore before-call hooks, moto)")
    identical = True
    for name in runs[sizes[0]]:
        small, large = runs[sizes[0]][name], runs[sizes[1]][name]
        same = small == large
        if not name.startswith("BASELINE"):
            identical &= same
        print(f"{name:<{width}}  {sizes[0]:>6} users: {summary(small)}")
        print(
            f"{'':<{width}}  {sizes[1]:>6} users: {summary(large)}"
            f"  {'same' if same else 'DIFFERENT'}"
        )
    print(
        f"\nper-operation counts identical at {sizes[0]} and {sizes[1]} users: "
        f"{'yes' if identical else 'NO'}"
    )
    across = cross_cell_send()
    print("\nsendMessage across cells (c0 -> c1), recipient online, 1 connection; vs one cell:")
    rows = {
        "in the sender's cell (c0)": across.sender_cell,
        "in its home cell (c1, Relay)": across.home_cell,
        "both cells": across.total,
        "BASELINE within one cell": runs[sizes[0]][SAME_CELL_SEND],
    }
    for label, calls in rows.items():
        print(f"  {label:<28} {summary(calls)}")
    across_flows = measure_cells()
    width = max(len(name) for name in across_flows)
    print("\nOther flows across cells (c0 -> c1; the caller's Invoke is c1's Relay):")
    for name, flow in across_flows.items():
        print(f"  {name:<{width}}  in c0: {summary(flow.caller)}")
        print(f"  {'':<{width}}  in c1: {summary(flow.peer)}")
    return 0 if identical else 1


if __name__ == "__main__":
    use_bench_environment()
    sys.exit(main())
