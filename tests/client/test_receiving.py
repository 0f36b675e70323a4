"""What the SDK does with frames it cannot use: pushed to it through the @connections API.

The server never sends these; a broken deployment, a newer protocol or API Gateway
itself might. Whatever comes, the client keeps working, and an item it cannot read
is acked (when it has an id) so that it does not come back on every sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import boto3
import pytest

from messenger_client.client import MessengerClient
from messenger_client.events import MessageAdded, PresenceChanged, ServerError, StatusChanged
from messenger_local import LocalStack
from messenger_protocol.frames import Ack, ClientFrame
from messenger_protocol.names import ErrorCode
from tests.client.conftest import MakeClient
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


class Pushed:
    """Frames of our choosing, posted to one client's connection as the functions post."""

    def __init__(self, stack: LocalStack, connection_id: str) -> None:
        self._connection_id = connection_id
        self._management = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=stack.http_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    async def post(self, frame: dict[str, Any]) -> None:
        # boto3 blocks, and the emulator answers on this very event loop.
        await asyncio.to_thread(
            self._management.post_to_connection,
            ConnectionId=self._connection_id,
            Data=json.dumps(frame).encode(),
        )


@pytest.fixture
async def bob(client: MakeClient) -> MessengerClient:
    return await client("bob")


@pytest.fixture
def to_bob(stack: LocalStack, bob: MessengerClient) -> Pushed:
    [connection_id] = stack.connection_ids()
    return Pushed(stack, connection_id)


def sent_frames(client: MessengerClient, monkeypatch: pytest.MonkeyPatch) -> list[ClientFrame]:
    """Every typed frame the client sends from now on (they still go out)."""
    connection = client._connection
    send = connection.send
    frames: list[ClientFrame] = []

    async def record(frame: ClientFrame | str) -> Any:
        if isinstance(frame, ClientFrame):
            frames.append(frame)
        return await send(frame)

    monkeypatch.setattr(connection, "send", record)
    return frames


async def test_a_malformed_message_with_an_id_is_acked_and_dropped(
    bob: MessengerClient, to_bob: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bob online
    sent = sent_frames(bob, monkeypatch)
    async with bob.events() as events:
        # When a message item comes without its body
        await to_bob.post(
            {"type": "message", "id": "item-1", "messageId": "m-000001", "from": "alice"}
        )
        # Then bob acks it, and stores and announces nothing
        await until(lambda: Ack(ids=["item-1"]) in sent)
        assert not [event for event in events.drain() if isinstance(event, MessageAdded)]
    assert bob.history("alice") == []


async def test_a_malformed_item_without_an_id_is_left_alone(
    bob: MessengerClient, to_bob: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_frames(bob, monkeypatch)
    # When a receipt comes without an id, and then one with an id but no messageIds
    await to_bob.post({"type": "receipt", "status": "seen", "by": "alice", "at": 1})
    async with bob.events() as events:
        await to_bob.post({"type": "receipt", "id": "item-2", "status": "seen", "by": "alice"})
        # Then only the second is acked (nothing else is), and no status moved
        await until(lambda: bool(sent))
        assert sent == [Ack(ids=["item-2"])]
        assert not [event for event in events.drain() if isinstance(event, StatusChanged)]


async def test_an_items_frame_with_one_bad_item_still_delivers_the_others(
    bob: MessengerClient, to_bob: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_frames(bob, monkeypatch)
    # When an items frame holds a malformed message between two good receipts, and an
    # entry that is no item at all
    good = {"type": "receipt", "status": "seen", "messageIds": ["m-000001"], "by": "alice"}
    await to_bob.post(
        {
            "type": "items",
            "items": [
                good | {"id": "item-4", "at": 1},
                {"type": "message", "id": "item-5", "messageId": "m-000002", "from": "alice"},
                {"type": "pong"},
                good | {"id": "item-6", "at": 2},
            ],
        }
    )
    # Then every item with an id is acked in order, the bad one dropped in its turn
    await until(lambda: bool(sent))
    assert sent == [Ack(ids=["item-4", "item-5", "item-6"])]


async def test_a_frame_of_an_unknown_type_is_ignored_with_a_log_line(
    bob: MessengerClient,
    to_bob: Pushed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="messenger_client")
    # When a frame of a type this client does not know arrives
    await to_bob.post({"type": "fromTheFuture", "id": "item-3"})
    # Then it is logged and ignored, and the client still works
    await until(lambda: "unknown type 'fromTheFuture'" in caplog.text)
    assert await bob.sync() == 0


async def test_api_gateways_own_error_frame_is_logged(
    bob: MessengerClient,
    to_bob: Pushed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="messenger_client")
    await to_bob.post(
        {"message": "Internal server error", "connectionId": "abc=", "requestId": "r-1"}
    )
    await until(lambda: "the gateway answered an error: Internal server error" in caplog.text)
    assert await bob.sync() == 0


async def test_an_error_no_request_waits_for_becomes_an_event(
    bob: MessengerClient, to_bob: Pushed
) -> None:
    async with bob.events() as events:
        await to_bob.post(
            {"type": "error", "code": "RATE_LIMITED", "message": "slow down", "ref": "ping"}
        )
        error = await events.next_of(ServerError)
    assert error == ServerError(ErrorCode.RATE_LIMITED, "slow down", "ping")


async def test_a_presence_change_updates_what_the_client_knows(
    bob: MessengerClient, to_bob: Pushed
) -> None:
    async with bob.events() as events:
        await to_bob.post(
            {"type": "presence", "users": [{"userId": "carol", "online": True, "lastSeen": None}]}
        )
        change = await events.next_of(PresenceChanged)
    assert (change.presence.user_id, change.presence.online) == ("carol", True)
    assert bob.presence("carol") == change.presence
