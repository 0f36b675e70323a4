"""The emulator behaves like API Gateway: events, authorizer, routing, errors, limits.

These tests run the emulator with stand-in functions (tests/e2e/fake_functions.py)
that record what they receive and misbehave on request.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.asyncio.client import ClientConnection

from messenger_local import EmbeddedAws, LocalStack
from tests.e2e import fake_functions
from tests.e2e.fake_functions import FAKE_AUTHORIZER, FAKE_ROUTES, LIFECYCLE_ROUTES
from tests.support.waiting import until
from tests.support.ws_client import handshake_status, open_socket

pytestmark = pytest.mark.e2e

AWS_ID = re.compile(r"^[A-Za-z0-9]{14}[AEIMQUYcgkosw048]=$")  # base64 of 11 bytes
REQUEST_TIME = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")
FakeStack = Callable[..., Any]


@pytest.fixture
def fake_stack(shared_aws: EmbeddedAws) -> FakeStack:
    """`async with fake_stack(**options) as stack`: the emulator with stand-in functions."""

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[LocalStack]:
        fake_functions.reset()
        options = {"routes": FAKE_ROUTES, "authorizer": FAKE_AUTHORIZER, **options}
        async with LocalStack(aws=shared_aws, **options) as stack:
            yield stack

    return start


def url_of(stack: LocalStack, user: str = "alice", mode: str = "allow", **more: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"user": user, "mode": mode, **more}.items())
    return f"{stack.ws_url}?{query}"


async def reply_to(socket: ClientConnection, frame: str, timeout: float = 5.0) -> Any:
    await socket.send(frame)
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


async def close_code_of(socket: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    await asyncio.wait_for(socket.wait_closed(), timeout)
    received = socket.protocol.close_rcvd
    assert received is not None, "closed without a close frame"
    return received.code, received.reason


# --- events -----------------------------------------------------------------------------


async def test_events_have_aws_shapes(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await reply_to(socket, '{"action":"echo"}')
        await socket.close()
        await until(lambda: fake_functions.events_of("disconnect"))
        [connect] = fake_functions.events_of("connect")
        [message] = fake_functions.events_of("echo")
        [disconnect] = fake_functions.events_of("disconnect")
    APIGatewayWebSocketConnectEventModel.model_validate(connect)
    parsed = APIGatewayWebSocketMessageEventModel.model_validate(message)
    assert parsed.body == '{"action":"echo"}' and message["isBase64Encoded"] is False
    gone = APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    assert gone.request_context.disconnect_status_code == 1000
    assert gone.request_context.disconnect_reason == "Client-side close frame status code"


async def test_request_context_looks_like_aws(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack), user_agent_header="tester/1.0")
        await reply_to(socket, '{"action":"echo"}')
        await reply_to(socket, '{"action":"echo"}')
        await socket.close()
        await until(lambda: fake_functions.events_of("disconnect"))
        contexts = [
            event["requestContext"]
            for name in ("connect", "echo", "disconnect")
            for event in fake_functions.events_of(name)
        ]
        port = stack.port
    first_message, second_message = contexts[1], contexts[2]
    for context in contexts:
        assert AWS_ID.match(context["connectionId"]) and AWS_ID.match(context["requestId"])
        assert context["connectionId"] == contexts[0]["connectionId"]
        assert context["connectedAt"] == contexts[0]["connectedAt"]
        assert re.fullmatch(r"[a-z0-9]{10}", context["apiId"])
        assert context["domainName"] == f"127.0.0.1:{port}" and context["stage"] == "local"
        assert REQUEST_TIME.match(context["requestTime"])
        assert abs(context["requestTimeEpoch"] - time.time() * 1000) < 30_000
        assert context["messageDirection"] == "IN"
        assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "tester/1.0"}
    assert [c["eventType"] for c in contexts] == ["CONNECT", "MESSAGE", "MESSAGE", "DISCONNECT"]
    assert [c["routeKey"] for c in contexts] == ["$connect", "echo", "echo", "$disconnect"]
    assert AWS_ID.match(first_message["messageId"])
    assert first_message["messageId"] != second_message["messageId"]
    assert first_message["requestId"] != second_message["requestId"]


async def test_connect_event_carries_upgrade_headers_and_query(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack, extra="1") + "&extra=2")
        await socket.close()
        await until(lambda: fake_functions.events_of("disconnect"))
        [event] = fake_functions.events_of("connect")
        [authorizer_event] = fake_functions.events_of("authorize")
    headers = event["headers"]
    assert headers["Host"] == event["requestContext"]["domainName"]
    assert headers["Sec-WebSocket-Version"] == "13" and headers["Sec-WebSocket-Key"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert "Upgrade" not in headers and "Connection" not in headers
    assert event["multiValueHeaders"]["Host"] == [headers["Host"]]
    assert event["queryStringParameters"]["extra"] == "2"
    assert event["multiValueQueryStringParameters"]["extra"] == ["1", "2"]
    # The authorizer gets a REQUEST event for the $connect method
    assert authorizer_event["type"] == "REQUEST"
    context = authorizer_event["requestContext"]
    assert authorizer_event["methodArn"] == (
        f"arn:aws:execute-api:us-east-1:123456789012:{context['apiId']}/local/$connect"
    )
    assert authorizer_event["queryStringParameters"]["user"] == "alice"
    assert authorizer_event["headers"] == headers | {"X-Amzn-Trace-Id": headers["X-Amzn-Trace-Id"]}
    assert authorizer_event["stageVariables"] == {}


async def test_authorizer_context_reaches_every_later_event(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack, user="bob"))
        await reply_to(socket, '{"action":"echo"}')
        await socket.close()
        await until(lambda: fake_functions.events_of("disconnect"))
        events = [fake_functions.events_of(name)[0] for name in ("connect", "echo", "disconnect")]
    for event in events:
        authorizer = event["requestContext"]["authorizer"]
        latency = authorizer.pop("integrationLatency")
        assert isinstance(latency, int) and latency >= 0
        # Context values arrive as strings, as API Gateway passes them on
        assert authorizer == {"principalId": "bob", "userId": "bob", "tier": "3", "beta": "true"}


async def test_handlers_get_a_lambda_context(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await reply_to(socket, '{"action":"echo"}')
        await socket.close()
        await until(lambda: fake_functions.events_of("disconnect"))
    [echo] = [entry for entry in fake_functions.received if entry["function"] == "echo"]
    assert echo["function_name"] == "FakeEcho"
    assert 0 < echo["remaining_ms"] <= 29_000
    request_ids = [entry["request_id"] for entry in fake_functions.received]
    assert len(set(request_ids)) == len(request_ids)


# --- the handshake ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("deny", 403),
        ("other-resource", 403),
        ("unauthorized", 401),
        ("crash", 500),
        ("nested", 500),
    ],
)
async def test_authorizer_refusals(fake_stack: FakeStack, mode: str, status: int) -> None:
    async with fake_stack() as stack:
        assert await handshake_status(url_of(stack, mode=mode)) == status
        assert fake_functions.events_of("connect") == []
        assert stack.connection_ids() == []


async def test_missing_identity_source_is_401_without_calling_the_authorizer(
    fake_stack: FakeStack,
) -> None:
    async with fake_stack() as stack:
        assert await handshake_status(f"{stack.ws_url}?user=alice") == 401
        assert fake_functions.events_of("authorize") == []


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_connect_status_fails_the_handshake(fake_stack: FakeStack, status: int) -> None:
    async with fake_stack() as stack:
        assert await handshake_status(url_of(stack, connectStatus=str(status))) == status
        await stack.settled()
        assert fake_functions.events_of("disconnect") == []


async def test_connect_with_any_2xx_opens(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        assert await handshake_status(url_of(stack, connectStatus="204")) == 101


async def test_plain_http_on_the_websocket_path_is_refused(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        status = await asyncio.to_thread(_http_get_status, stack.http_url)
    assert status == 426


def _http_get_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# --- routes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "route"),
    [
        ('{"action":"echo"}', "echo"),
        ('{"action":"echo","extra":[1,2]}', "echo"),
        ('{"action":"nope"}', "$default"),
        ('{"action":5}', "$default"),
        ('{"action":"$connect"}', "$default"),
        ('{"no":"action"}', "$default"),
        ('["echo"]', "$default"),
        ('{"action":"echo"', "$default"),
        ("plain text", "$default"),
    ],
)
async def test_route_selection_on_action(fake_stack: FakeStack, frame: str, route: str) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        assert await reply_to(socket, frame) == {"route": route, "body": frame}
        await socket.close()


async def test_no_default_route_answers_forbidden(fake_stack: FakeStack) -> None:
    routes = (*LIFECYCLE_ROUTES, *(r for r in FAKE_ROUTES if r.key == "echo"))
    async with fake_stack(routes=routes) as stack:
        socket = await open_socket(url_of(stack))
        await reply_to(socket, '{"action":"echo"}')
        [connection_id] = stack.connection_ids()
        frame = await reply_to(socket, '{"action":"nope"}')
        await socket.close()
    assert frame["message"] == "Forbidden" and frame["connectionId"] == connection_id
    assert AWS_ID.match(frame["requestId"])


async def test_raising_handler_answers_internal_server_error(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        frame = await reply_to(socket, '{"action":"boom"}')
        [connection_id] = stack.connection_ids()
        await socket.close()
        [logged] = stack.invocations_of("boom")
    assert frame["message"] == "Internal server error"
    assert frame["connectionId"] == connection_id and AWS_ID.match(frame["requestId"])
    assert logged.outcome == "raised RuntimeError"


async def test_integration_timeout_answers_endpoint_request_timed_out(
    fake_stack: FakeStack,
) -> None:
    async with fake_stack(integration_timeout=0.3) as stack:
        socket = await open_socket(url_of(stack))
        frame = await reply_to(socket, '{"action":"slow","seconds":0.6}')
        await socket.close()
    assert frame["message"] == "Endpoint request timed out"


async def test_one_way_route_sends_no_response(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await socket.send('{"action":"oneWay"}')
        await until(lambda: stack.invocations_of("oneWay"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(socket.recv(), 0.3)
        await socket.close()


async def test_frames_posted_by_a_handler_come_before_its_response(
    fake_stack: FakeStack,
) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await socket.send('{"action":"postThenReply","count":20}')
        frames = [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(21)]
        await socket.close()
    assert frames == [{"posted": i} for i in range(20)] + [{"replied": 20}]


# --- limits -----------------------------------------------------------------------------


def _text_frame(size: int) -> str:
    return '{"action":"echo","pad":"' + "x" * (size - 26) + '"}'


async def test_frame_of_32_kb_passes(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        frame = _text_frame(32 * 1024)
        assert len(frame.encode()) == 32 * 1024
        assert (await reply_to(socket, frame))["route"] == "echo"
        await socket.close()


async def test_frame_over_32_kb_closes_with_1009(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await socket.send(_text_frame(32 * 1024 + 1))
        assert (await close_code_of(socket))[0] == 1009
        [gone] = await until(lambda: fake_functions.events_of("disconnect"))
        assert fake_functions.events_of("echo") == []
    assert gone["requestContext"]["disconnectStatusCode"] == 1009


async def test_message_of_32_kb_frames_up_to_128_kb_passes(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        whole = _text_frame(128 * 1024)
        fragments = [whole[i : i + 32 * 1024] for i in range(0, len(whole), 32 * 1024)]
        await socket.send(fragments)  # one message, four frames of 32 KB
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
        await socket.close()
    assert reply["route"] == "echo" and reply["body"] == whole


async def test_message_over_128_kb_closes_with_1009(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        whole = _text_frame(128 * 1024 + 1)
        await socket.send([whole[i : i + 30_000] for i in range(0, len(whole), 30_000)])
        assert (await close_code_of(socket))[0] == 1009


async def test_binary_frame_closes_with_1003(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await socket.send(b'{"action":"echo"}')
        assert (await close_code_of(socket))[0] == 1003
        [gone] = await until(lambda: fake_functions.events_of("disconnect"))
    assert gone["requestContext"]["disconnectStatusCode"] == 1003


async def test_idle_connection_closes_with_1001_and_disconnects(fake_stack: FakeStack) -> None:
    async with fake_stack(idle_timeout=0.5) as stack:
        socket = await open_socket(url_of(stack), ping_interval=0.1)  # pings are not activity
        started = time.monotonic()
        assert await close_code_of(socket) == (1001, "Going away")
        assert 0.4 < time.monotonic() - started < 2.0
        [gone] = await until(lambda: fake_functions.events_of("disconnect"))
    assert gone["requestContext"]["disconnectStatusCode"] == 1001
    assert gone["requestContext"]["disconnectReason"] == "Going away"
    assert gone["requestContext"]["authorizer"]["principalId"] == "alice"


async def test_frames_keep_a_connection_from_idling(fake_stack: FakeStack) -> None:
    async with fake_stack(idle_timeout=0.6) as stack:
        socket = await open_socket(url_of(stack))
        for _ in range(6):
            await asyncio.sleep(0.15)
            await reply_to(socket, '{"action":"echo"}')
        assert len(stack.connection_ids()) == 1
        await socket.close()


async def test_connection_closes_at_its_maximum_duration(fake_stack: FakeStack) -> None:
    async with fake_stack(max_duration=0.6) as stack:
        socket = await open_socket(url_of(stack))
        started = time.monotonic()

        async def keep_busy() -> None:
            while True:
                await socket.send('{"action":"oneWay"}')
                await asyncio.sleep(0.1)

        busy = asyncio.create_task(keep_busy())
        try:
            assert (await close_code_of(socket))[0] == 1001
        finally:
            busy.cancel()
        assert 0.5 < time.monotonic() - started < 2.0
        assert stack.connection_ids() == []


async def test_client_close_code_reaches_disconnect(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        await socket.close(code=4000, reason="bye")
        [gone] = await until(lambda: fake_functions.events_of("disconnect"))
    assert gone["requestContext"]["disconnectStatusCode"] == 4000


async def test_stopping_the_stack_disconnects_everyone(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        sockets = [await open_socket(url_of(stack, user=name)) for name in ("alice", "bob")]
    for socket in sockets:
        assert (await close_code_of(socket))[0] == 1001
    codes = [
        e["requestContext"]["disconnectStatusCode"] for e in fake_functions.events_of("disconnect")
    ]
    assert codes == [1001, 1001]


async def test_invocations_run_concurrently(fake_stack: FakeStack) -> None:
    async with fake_stack() as stack:
        socket = await open_socket(url_of(stack))
        started = time.monotonic()
        for _ in range(4):
            await socket.send('{"action":"slow","seconds":0.4}')
        replies = [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(4)]
        elapsed = time.monotonic() - started
        await socket.close()
    assert replies == [{"late": True}] * 4
    assert elapsed < 1.2  # four at once, not one after another (1.6 s)
