"""Every line a function logs names its own invocation, however many run at once.

From issue 12: with invocations running concurrently in the local stack, a `$disconnect`
error was logged with another user's id and connection, and an authorizer failure as
`function_name: "Connect"`. Here refusals are logged by many invocations at once
(handshakes the authorizer refuses, frames the route refuses) and each log line is
matched to the invocation that wrote it by its request id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.contract import AUTHORIZER, ROUTES, SERVICE_NAME
from messenger_local import LocalStack
from tests.support.identities import TestUser
from tests.support.ws_client import (
    WsClient,
    connect_as,
    handshake_status,
    message_frame,
    signed_url,
)

pytestmark = pytest.mark.e2e

FUNCTION_OF_ROUTE = {route.key: route.function_name for route in ROUTES} | {
    "authorizer": AUTHORIZER.function_name
}
SENDERS = 8
FRAMES_EACH = 6
REFUSED_HANDSHAKES = 12


class FunctionLog(logging.Handler):
    """The functions' log lines, formatted by their own powertools formatter."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Formatting happens on the invocation's thread, as the function's own handler does.
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def function_log() -> Iterator[FunctionLog]:
    from messenger.observability import logger

    capture = FunctionLog()
    capture.setFormatter(logger.registered_formatter)
    functions_logger = logging.getLogger(SERVICE_NAME)
    level = functions_logger.level
    # The suite runs the functions at WARNING; refusals are logged at INFO.
    functions_logger.setLevel(logging.INFO)
    functions_logger.addHandler(capture)
    try:
        yield capture
    finally:
        functions_logger.removeHandler(capture)
        functions_logger.setLevel(level)


async def test_concurrent_invocations_log_their_own_function_user_and_connection(
    stack: LocalStack, function_log: FunctionLog
) -> None:
    # Given users connected to the stack
    senders = [TestUser(f"logger{number}") for number in range(SENDERS)]
    clients: list[WsClient] = [await connect_as(stack.ws_url, user) for user in senders]
    await stack.settled()
    function_log.lines.clear()

    # When they all send frames the route refuses while handshakes the authorizer
    # refuses (an hour-old signature) come in, all at once
    async def refused_frames(client: WsClient) -> None:
        for number in range(FRAMES_EACH):
            nobody = TestUser("nobody")
            await client.send(message_frame(client.user, nobody, "hello", f"message{number:04d}"))

    stale = int(time.time()) - 3600
    handshakes = [
        handshake_status(signed_url(stack.ws_url, TestUser(f"stale{number}"), ts=stale))
        for number in range(REFUSED_HANDSHAKES)
    ]
    results = await asyncio.gather(*(refused_frames(c) for c in clients), *handshakes)
    assert results[SENDERS:] == [403] * REFUSED_HANDSHAKES
    for client in clients:
        for _ in range(FRAMES_EACH):
            assert (await client.next_of("error"))["code"] == "UNKNOWN_RECIPIENT"
    await stack.settled()

    # Then each refused invocation logged one line under its own request id (a line
    # logged under the keys of another invocation would leave its own id missing) ...
    invocations = {i.request_id: i for i in stack.invocations if i.request_id}
    refused = [
        i.request_id
        for i in stack.invocations
        if i.outcome in ("deny", "error UNKNOWN_RECIPIENT") and i.request_id
    ]
    assert len(refused) == SENDERS * FRAMES_EACH + REFUSED_HANDSHAKES
    lines = [line for line in function_log.lines if "refused" in line["message"]]
    assert sorted(str(line.get("function_request_id")) for line in lines) == sorted(refused)
    # ... and every line names the function, connection and user of that invocation
    for line in lines:
        invocation = invocations[line["function_request_id"]]
        assert line["function_name"] == FUNCTION_OF_ROUTE[invocation.route], line
        assert line["connection"] == invocation.connection_id, line
        # The authorizer's user is only claimed, never logged before it is proven.
        expected_user = None if invocation.route == "authorizer" else invocation.user
        assert line.get("user") == expected_user, line
    for client in clients:
        await client.close()
