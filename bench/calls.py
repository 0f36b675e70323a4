"""AWS calls per operation, counted with botocore's event hooks on the real handlers.

Every operation is measured twice: with 10 and with 10,000 registered users. The counts
must be identical (nothing grows with the user base). The baseline, measured in the
same run on the same moto tables, is the design of AWS's simple-websockets-chat-app
sample: find the recipient's connections by scanning a connections table.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

from messenger.dal.users import Profile, profile_item
from tests.support.harness import TABLE_NAMES, Connection, Harness, harness
from tests.support.identities import TestUser


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


def seed_users(h: Harness, count: int) -> None:
    """Register `count` users directly (BatchWriteItem), as if they had connected once."""
    signer = TestUser("seed")
    requests = [
        {
            "PutRequest": {
                "Item": profile_item(
                    Profile(
                        user_id=f"user{i:07d}",
                        sign_key=signer.sign_key_b64,
                        box_key=signer.box_key_b64,
                        created_at=h.clock.now_ms(),
                    )
                )
            }
        }
        for i in range(count)
    ]
    for start in range(0, len(requests), 25):
        h.dynamodb.batch_write_item(
            RequestItems={TABLE_NAMES["Users"]: requests[start : start + 25]}
        )


@dataclass
class Scenario:
    name: str
    run: Callable[[Harness, CallCounter], Counter[str]]


def _fresh_pair(h: Harness) -> tuple[TestUser, TestUser]:
    suffix = str(len(h.posts.attempts)) + str(h.clock.now_us())[-6:]
    return TestUser(f"alice{suffix}"), TestUser(f"bob{suffix}")


def connect_new(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    with c.measuring() as calls:
        h.connect(alice)
    return calls


def connect_known(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    h.disconnect(h.connect(alice))
    with c.measuring() as calls:
        h.connect(alice, with_keys=False)
    return calls


def disconnect(h: Harness, c: CallCounter) -> Counter[str]:
    alice, _ = _fresh_pair(h)
    a = h.connect(alice)
    with c.measuring() as calls:
        h.disconnect(a)
    return calls


def _send(h: Harness, c: CallCounter, recipient_connections: int) -> Counter[str]:
    alice, bob = _fresh_pair(h)
    a = h.connect(alice)
    devices = [h.connect(bob) for _ in range(recipient_connections)]
    if not devices:
        h.disconnect(h.connect(bob))
    frame = h.message(a, bob, "hello", "msg-bench-0001")
    with c.measuring() as calls:
        reply = h.send(a, frame)
    assert reply is not None and reply["type"] == "ack", reply
    return calls


def send_online_1(h: Harness, c: CallCounter) -> Counter[str]:
    return _send(h, c, 1)


def send_online_3(h: Harness, c: CallCounter) -> Counter[str]:
    return _send(h, c, 3)


def send_offline(h: Harness, c: CallCounter) -> Counter[str]:
    return _send(h, c, 0)


def _queue_for(h: Harness, count: int) -> tuple[Connection, Connection]:
    alice, bob = _fresh_pair(h)
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    for i in range(count):
        h.send(a, h.message(a, bob, "x", f"msg-bench-{i:05d}"))
        h.clock.advance(0.5)  # a steady sender, inside the rate limit
    b = h.connect(bob)
    return a, b


def _ack(h: Harness, c: CallCounter, count: int) -> Counter[str]:
    _, b = _queue_for(h, count)
    h.send(b, {"action": "sync"})
    ids = [f["id"] for f in h.posts.of_type(b.connection_id, "message")]
    with c.measuring() as calls:
        h.send(b, {"action": "ack", "ids": ids})
    return calls


def ack_1(h: Harness, c: CallCounter) -> Counter[str]:
    return _ack(h, c, 1)


def ack_100(h: Harness, c: CallCounter) -> Counter[str]:
    return _ack(h, c, 100)


def _sync(h: Harness, c: CallCounter, count: int, batch: bool) -> Counter[str]:
    _, b = _queue_for(h, count)
    # A first round makes the cursor key (once per deployment) and reads it (once per
    # container): the page measured is what every later first page costs.
    h.send(b, {"action": "sync", "batch": batch})
    with c.measuring() as calls:
        h.send(b, {"action": "sync", "batch": batch})
    return calls


def sync_10(h: Harness, c: CallCounter) -> Counter[str]:
    return _sync(h, c, 10, batch=False)


def sync_page_of_1000(h: Harness, c: CallCounter) -> Counter[str]:
    return _sync(h, c, 1000, batch=False)


def sync_page_of_1000_batched(h: Harness, c: CallCounter) -> Counter[str]:
    return _sync(h, c, 1000, batch=True)


# The frames of one message's life (`message_life`): infra/throttling.py sizes the stage
# throttle from them and from the posts they cause.
MESSAGE_LIFE_FRAMES = 3


def message_life(h: Harness, c: CallCounter) -> Counter[str]:
    """One message's whole life: alice sends it, bob's device gets it live and acks it,
    alice gets the `delivered` receipt live and acks that (3 frames)."""
    alice, bob = _fresh_pair(h)
    a, b = h.connect(alice), h.connect(bob)
    total: Counter[str] = Counter()
    with c.measuring() as calls:
        h.send(a, h.message(a, bob, "hello", "msg-life-0001"))
    total += calls
    [message] = h.posts.of_type(b.connection_id, "message")
    with c.measuring() as calls:
        h.send(b, {"action": "ack", "ids": [message["id"]]})
    total += calls
    [receipt] = h.posts.of_type(a.connection_id, "receipt")
    with c.measuring() as calls:
        h.send(a, {"action": "ack", "ids": [receipt["id"]]})
    total += calls
    return total


def posts_of(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("apigatewaymanagementapi."))


def get_presence(h: Harness, c: CallCounter) -> Counter[str]:
    alice, bob = _fresh_pair(h)
    a = h.connect(alice)
    h.connect(bob)
    with c.measuring() as calls:
        h.send(a, {"action": "getPresence", "userIds": [bob.user_id], "subscribe": True})
    return calls


SCENARIOS = [
    Scenario("connect, new user (authorizer + $connect)", connect_new),
    Scenario("connect, known user (authorizer + $connect)", connect_known),
    Scenario("disconnect", disconnect),
    Scenario("sendMessage, recipient online, 1 connection", send_online_1),
    Scenario("sendMessage, recipient online, 3 connections", send_online_3),
    Scenario("sendMessage, recipient offline", send_offline),
    Scenario("ack, 1 id", ack_1),
    Scenario("ack, 100 ids", ack_100),
    Scenario("sync, 10 items", sync_10),
    Scenario("sync, 1,000 queued: first page, one frame per item", sync_page_of_1000),
    Scenario("sync, 1,000 queued: first page, batch", sync_page_of_1000_batched),
    Scenario("getPresence, 1 user, subscribe", get_presence),
    Scenario(f"message life ({MESSAGE_LIFE_FRAMES} frames: send, ack, receipt ack)", message_life),
]


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
    detail = ", ".join(f"{op.split('.', 1)[1]}x{n}" for op, n in sorted(calls.items()))
    return f"{dynamo:>3} DynamoDB  {posts:>4} post  {sns:>2} SNS   ({detail})"


def measure(users: int) -> dict[str, Counter[str]]:
    results: dict[str, Counter[str]] = {}
    with harness() as h:
        seed_users(h, users)
        counter = CallCounter()
        instrument(h, counter)
        for scenario in SCENARIOS:
            results[scenario.name] = scenario.run(h, counter)
        results["BASELINE scan design: find recipient's connections"] = scan_design_send(
            h, CallCounter(), users
        )
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
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
