"""Every DynamoDB call a route's function makes is one its IAM role allows.

moto does not check IAM, so a function that starts using a new operation (a BatchGetItem
where it used GetItem) would pass every test here and fail on AWS with AccessDenied.
This drives each frame route on moto, records the calls its function makes, and checks
each against the grants infra/permissions.py gives the access the route declares in
contract.ROUTES.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from infra.permissions import (
    LIMITS_ACTIONS,
    QUEUE_READ_ACTIONS,
    QUEUE_WRITE_ACTIONS,
    USERS_READ_ACTIONS,
    WRITE_ACTIONS,
)
from messenger.contract import (
    LIMITS_TABLE,
    QUEUE_TABLE,
    ROUTES_BY_KEY,
    USERS_TABLE,
    Access,
    TableSpec,
)
from tests.support.devices import LinkedDevice, device_list, sealed_message, set_devices_frame
from tests.support.harness import TABLE_NAMES, Connection, Harness, harness
from tests.support.identities import TestUser
from tests.support.queue import seed

pytestmark = pytest.mark.integration

SPECS = {TABLE_NAMES[spec.logical_name]: spec for spec in (USERS_TABLE, QUEUE_TABLE, LIMITS_TABLE)}
# What each access allows on its table (on an index, Query only).
ALLOWED: dict[Access, tuple[TableSpec, tuple[str, ...]]] = {
    Access.USERS_READ: (USERS_TABLE, USERS_READ_ACTIONS),
    Access.USERS_WRITE: (USERS_TABLE, WRITE_ACTIONS),
    Access.QUEUE_READ: (QUEUE_TABLE, QUEUE_READ_ACTIONS),
    Access.QUEUE_WRITE: (QUEUE_TABLE, QUEUE_WRITE_ACTIONS),
    Access.LIMITS: (LIMITS_TABLE, LIMITS_ACTIONS),
}
TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def actions_of(operation: str, params: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(IAM action, table, on an index) of one call."""
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table, False) for table in params["RequestItems"]]
    if operation == "TransactWriteItems":
        return [
            (f"dynamodb:{TRANSACTION_ACTIONS[kind]}", body["TableName"], False)
            for item in params["TransactItems"]
            for kind, body in item.items()
        ]
    return [(f"dynamodb:{operation}", params["TableName"], "IndexName" in params)]


class Recorder:
    def __init__(self, h: Harness) -> None:
        self.calls: list[tuple[str, str, bool]] | None = None
        h.services.dynamodb.meta.events.register("before-parameter-build.dynamodb", self._record)

    def _record(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        if self.calls is not None:
            self.calls += actions_of(model.name, params)

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, str, bool]]]:
        self.calls = []
        try:
            yield self.calls
        finally:
            self.calls = None


def refused(route: str, calls: list[tuple[str, str, bool]]) -> list[str]:
    """The calls the route's role would be refused."""
    access = ROUTES_BY_KEY[route].access
    problems = []
    for action, table, on_index in calls:
        spec = SPECS[table]
        allowed = any(
            spec is granted_spec
            and (action == "dynamodb:Query" if on_index else action in actions)
            and (not on_index or need in (Access.USERS_READ, Access.QUEUE_READ))
            for need, (granted_spec, actions) in ALLOWED.items()
            if need in access
        )
        if not allowed:
            problems.append(f"{action} on {spec.logical_name}{' index' if on_index else ''}")
    return problems


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_every_frame_route_calls_only_what_its_role_allows(alice: TestUser, bob: TestUser) -> None:
    with harness() as h:
        recorder = Recorder(h)
        a, b = h.connect(alice), h.connect(bob)
        seen: dict[str, list[tuple[str, str, bool]]] = {}

        def send(connection: Connection, frame: dict[str, Any]) -> Any:
            with recorder.recording() as calls:
                reply = h.send(connection, frame)
            seen.setdefault(frame["action"], []).extend(calls)
            return reply

        # Given a conversation that takes every frame route through its DynamoDB calls
        send(a, h.message(a, bob, "hi", "grant-msg-1"))
        [message] = h.posts.take(b.connection_id)
        send(b, {"action": "ack", "ids": [message["id"]]})
        [receipt] = h.posts.take(a.connection_id)
        send(a, {"action": "ack", "ids": [receipt["id"]]})
        send(b, {"action": "markSeen", "to": alice.user_id, "messageIds": ["grant-msg-1"]})
        send(b, {"action": "getPresence", "userIds": [alice.user_id], "subscribe": True})
        send(b, {"action": "getKeys", "userId": alice.user_id})
        send(b, {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": ["x"]})
        # bob links a laptop, which gets a message, then removes it (its queue deleted)
        laptop = LinkedDevice(bob, "laptop")
        bobs = device_list(bob, 1, laptop)
        send(b, set_devices_frame(bobs))
        h.connect(laptop)
        send(a, sealed_message(alice.box_key, bobs, device_list(alice, 0), "1", "x", "grant-msg-2"))
        send(b, set_devices_frame(device_list(bob, 2)))
        seed(h, bob.user_id, 510)
        send(b, {"action": "sync", "batch": True})
        done = h.posts.take(b.connection_id)[-1]
        send(b, {"action": "sync", "batch": True, "after": done["cursor"]})
        # Then every call was one the route's role may make
        assert {
            "sendMessage",
            "ack",
            "markSeen",
            "sync",
            "getPresence",
            "getKeys",
            "setDevices",
        } <= {route for route, calls in seen.items() if calls}
        problems = {route: refused(route, calls) for route, calls in seen.items()}
        assert problems == {route: [] for route in seen}
