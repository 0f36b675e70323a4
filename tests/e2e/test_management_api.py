"""The @connections management API, through an unchanged boto3 client."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from messenger_local import LocalStack
from messenger_protocol.limits import MAX_MESSAGE_BYTES
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


@pytest.fixture
def management(stack: LocalStack) -> Any:
    """boto3's apigatewaymanagementapi client, pointed at the emulator with endpoint_url."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=stack.http_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def call(method: Any, **kwargs: Any) -> Any:
    # boto3 blocks, and the emulator answers on this very event loop.
    return await asyncio.to_thread(method, **kwargs)


async def test_post_sends_the_data_to_the_socket(
    management: Any, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice, check_frames=False)  # frames of our own, not the protocol
    response = await call(
        management.post_to_connection,
        ConnectionId=client.connection_id,
        Data=b'{"type":"hello","n":1}',
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert await client.next() == {"type": "hello", "n": 1}


async def test_post_of_128_kb_passes_and_over_is_413(
    management: Any, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice, check_frames=False)  # frames of our own, not the protocol
    filler = "x" * (MAX_MESSAGE_BYTES - len('{"pad":""}'))
    await call(
        management.post_to_connection,
        ConnectionId=client.connection_id,
        Data=json.dumps({"pad": filler}, separators=(",", ":")).encode(),
    )
    assert len((await client.next())["pad"]) == len(filler)
    with pytest.raises(management.exceptions.PayloadTooLargeException) as raised:
        await call(
            management.post_to_connection,
            ConnectionId=client.connection_id,
            Data=b"x" * (MAX_MESSAGE_BYTES + 1),
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    await client.nothing_more()


async def test_post_to_an_unknown_connection_is_gone(management: Any, stack: LocalStack) -> None:
    with pytest.raises(management.exceptions.GoneException) as raised:
        await call(management.post_to_connection, ConnectionId="L0SM9cOFvHcCIhw=", Data=b"{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert raised.value.response["Error"]["Code"] == "GoneException"


async def test_post_after_the_client_left_is_gone(
    management: Any, stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice, check_frames=False)  # frames of our own, not the protocol
    await client.close()
    await until(lambda: stack.invocations_of("$disconnect"))
    with pytest.raises(management.exceptions.GoneException):
        await call(management.post_to_connection, ConnectionId=client.connection_id, Data=b"{}")


async def test_get_describes_the_connection(
    management: Any, connect: Connect, alice: TestUser
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    client = await connect(alice, check_frames=False)  # frames of our own, not the protocol
    first = await call(management.get_connection, ConnectionId=client.connection_id)
    assert before <= first["ConnectedAt"] <= datetime.now(UTC)
    assert first["Identity"]["SourceIp"] == "127.0.0.1"
    assert first["Identity"]["UserAgent"].startswith("Python/")
    assert first["LastActiveAt"] >= first["ConnectedAt"]
    # A frame from the client is activity
    await asyncio.sleep(0.05)
    await client.request({"action": "ping"})
    second = await call(management.get_connection, ConnectionId=client.connection_id)
    assert second["LastActiveAt"] > first["LastActiveAt"]
    assert second["ConnectedAt"] == first["ConnectedAt"]


async def test_delete_closes_the_socket_and_fires_disconnect(
    management: Any, stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice, check_frames=False)  # frames of our own, not the protocol
    response = await call(management.delete_connection, ConnectionId=client.connection_id)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert (await client.closed())[0] == 1000
    [disconnect] = await until(lambda: stack.invocations_of("$disconnect"))
    assert disconnect.connection_id == client.connection_id and disconnect.user == "alice"
    with pytest.raises(management.exceptions.GoneException):
        await call(management.get_connection, ConnectionId=client.connection_id)
    with pytest.raises(management.exceptions.GoneException):
        await call(management.delete_connection, ConnectionId=client.connection_id)


async def test_functions_reach_the_api_only_through_configuration(stack: LocalStack) -> None:
    # On AWS the functions build https://{domainName}/{stage}; here the same stage is
    # served at CONNECTIONS_ENDPOINT, and domainName names this very server.
    assert stack.environment["CONNECTIONS_ENDPOINT"] == stack.http_url
    assert stack.http_url == f"http://127.0.0.1:{stack.port}/{stack.stage}"
    assert stack.environment["AWS_ENDPOINT_URL"] == stack.aws_endpoint
