"""The mesh on `messenger local --cells N` (docs/scale.md "The mesh"): a forged Relay call
refused end to end, over Lambda's Invoke API as the peers call it, and any two users of
any two of 8 cells chatting through their own cells."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest

from messenger.transport.relay_records import request_payload
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.aws import FAKE_CREDENTIALS
from messenger_local.cells import cell_ids
from messenger_protocol.names import RelayOperation
from tests.support.cells import user_homed_in
from tests.support.stack_fixtures import MANY_REGISTRATIONS, connector, dump_cells
from tests.support.ws_client import message_frame

pytestmark = pytest.mark.e2e


@pytest.fixture
async def three_cells(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    async with LocalStack(aws=shared_aws, cells=3) as running:
        yield running


def _invoke(stack: LocalStack, cell: str, payload: Any) -> dict[str, Any]:
    """Invoke a cell's Relay by its ARN through the stack's Invoke API, as a peer does."""
    invoker = boto3.client(
        "lambda",
        endpoint_url=stack.lambda_url,
        region_name=stack.aws.region,
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
    )
    response = invoker.invoke(FunctionName=stack.cell(cell).relay_arn, Payload=json.dumps(payload))
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    return answer


async def test_a_relay_call_claiming_c1_made_by_c2_or_by_no_cell_is_refused_and_writes_nothing(
    three_cells: LocalStack,
) -> None:
    cells = ("c0", "c1", "c2")
    alice, bob = user_homed_in("c0", "alice", cells), user_homed_in("c1", "bob", cells)
    async with connector(three_cells) as connect:
        await (await connect(alice)).close()
        await (await connect(bob)).close()
    frame = message_frame(bob, alice, "hi, it is bob", "msg-forged-0001")
    del frame["action"]
    fields = {"sender": bob.user_id, "frame": frame}
    before = await dump_cells(three_cells)
    # Before: what every call looked like, `from` believed as said (accepted until now)
    unsigned = {"op": "storeMessage", "from": "c1", **fields}
    # c2, with the key only its own functions can read, claiming to be c1
    c2_key = three_cells.cell("c2").services.relay_signing_key()
    now_ms = int(time.time() * 1000)
    by_c2 = request_payload(RelayOperation.STORE_MESSAGE, "c1", "c0", fields, c2_key, now_ms)
    for name, forged in (("unsigned", unsigned), ("made by c2", by_c2)):
        # When the call reaches c0's Relay
        answer = await asyncio.to_thread(_invoke, three_cells, "c0", forged)
        # Then it is refused, and no cell's table changed: alice has no message "from bob"
        assert answer["error"]["code"] == "BAD_REQUEST", (name, answer)
        assert answer["error"]["message"] in (
            "a relay request is signed: from, to, at, id and sig",
            "relay request not signed by the calling cell",
        ), name
        assert await dump_cells(three_cells) == before, name
    outcomes = [i.outcome for i in three_cells.invocations_of("Relay", cell="c0")]
    assert outcomes == ["error BAD_REQUEST (storeMessage)"] * 2, outcomes


@pytest.mark.slow
async def test_eight_cells_every_pair_of_cells_chats(shared_aws: EmbeddedAws) -> None:
    # Given `messenger local --cells 8`, one user at home in each cell
    cells = tuple(cell_ids(8))
    users = {cell: user_homed_in(cell, f"user-{cell}", cells) for cell in cells}
    async with (
        LocalStack(aws=shared_aws, cells=len(cells), environment=MANY_REGISTRATIONS) as stack,
        connector(stack) as connect,
    ):
        assert stack.cell_ids == cells
        clients = {}
        for cell in cells:  # one at a time: the connector tells connections apart so
            clients[cell] = await connect(users[cell])
        # When, for every pair of cells, each of the two sends the other a message
        for number, (a, b) in enumerate(itertools.permutations(cells, 2)):
            message_id = f"msg-mesh-{number:04d}"
            frame = message_frame(users[a], users[b], f"{a} to {b}", message_id)
            ack = await clients[a].request(frame)
            # Then it is acknowledged once stored in the recipient's cell, and delivered live
            assert ack["type"] == "ack" and ack["messageId"] == message_id, (a, b, ack)
            delivered = await clients[b].next_of("message")
            assert (delivered["from"], delivered["messageId"]) == (users[a].user_id, message_id)
        # And every cell's Relay was called by every other cell
        for cell in cells:
            assert len(stack.invocations_of("Relay", cell=cell)) >= len(cells) - 1, cell
