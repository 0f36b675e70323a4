"""What a web page cannot make `messenger local` do (issue 21, messenger_local.browser_guard):
a forged cross-origin POST to /_local/failover, a DNS-rebound Host, an unsigned Lambda
Invoke sent as alice, an unsigned or browser request to moto's port. The stack's own
clients (boto3 signing with dummy credentials, the documented curl commands) still work."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest

from messenger.contract import Env
from messenger_local import LocalStack
from messenger_local.aws import FAKE_CREDENTIALS
from messenger_local.browser_guard import LOCAL_HEADERS
from messenger_local.events import Api, Handshake, epoch_ms, message_event, new_id
from messenger_local.stack import FAILOVER_LOGGER
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.local_control import post_local
from tests.support.ws_client import connect_as, message_frame

pytestmark = pytest.mark.e2e

EVIL_ORIGIN = "https://evil.example"
# The shape of a SigV4 header, with a signature nobody computed: what a page could copy.
FAKE_SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=testing/20261206/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


def request(
    url: str, *, method: str = "POST", headers: dict[str, str] | None = None, data: bytes = b""
) -> tuple[int, Any]:
    """Any HTTP request, as a page's fetch would send it; (status, the JSON answer)."""
    sent = urllib.request.Request(url, method=method, data=data or None, headers=headers or {})
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def failover_url(stack: LocalStack, cell: str = "c0") -> str:
    return f"http://127.0.0.1:{stack.port}/_local/failover/{cell}"


def invoke_url(stack: LocalStack, function_name: str) -> str:
    return f"http://127.0.0.1:{stack.port}/2015-03-31/functions/{function_name}/invocations"


def signed_client(stack: LocalStack, service: str, endpoint: str) -> Any:
    """A client as the functions make theirs: dummy credentials, real SigV4, over HTTP."""
    session = boto3.Session(
        region_name=stack.aws.region,
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


def signed_lambda(stack: LocalStack) -> Any:
    return signed_client(stack, "lambda", f"http://127.0.0.1:{stack.port}")


async def assert_not_failed_over(stack: LocalStack) -> None:
    assert stack.standby("c0").failover is None
    assert stack.directory.version == 1
    assert stack.directory.url_of("c0") == stack.standby("c0").primary.ws_url


async def test_a_forged_cross_origin_failover_is_refused_and_nothing_fails_over(
    standby_stack: LocalStack,
) -> None:
    # Given a page's no-cors fetch: its Origin, no X-Messenger-Local header
    status, answer = await asyncio.to_thread(
        request, failover_url(standby_stack), headers={"Origin": EVIL_ORIGIN}
    )
    # Then it is refused, saying why, and c0 still runs on its primary
    assert status == 403
    assert "X-Messenger-Local" in answer["message"]
    await assert_not_failed_over(standby_stack)


async def test_a_rebound_host_is_refused_even_with_the_header(standby_stack: LocalStack) -> None:
    # Given a DNS-rebound name: the page is same-origin with it and may send any header
    headers = {**LOCAL_HEADERS, "Host": f"rebound.evil.example:{standby_stack.port}"}
    status, answer = await asyncio.to_thread(request, failover_url(standby_stack), headers=headers)
    assert status == 403
    assert "loopback Host" in answer["message"]
    await assert_not_failed_over(standby_stack)


async def test_a_failover_with_the_header_and_a_loopback_host_is_logged_once(
    standby_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=FAILOVER_LOGGER.name)
    for host in ("localhost", "127.0.0.1", "[::1]"):
        headers = {**LOCAL_HEADERS, "Host": f"{host}:{standby_stack.port}"}
        status, answer = await asyncio.to_thread(post_local, failover_url(standby_stack), headers)
        assert status == 200, answer
        assert answer["epoch"] == "local-c0-standby#1"  # the second and third change nothing
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "failover: c0 -> c0-standby (epoch local-c0-standby#1, 0 writes dropped)"
    assert (
        lines[1:]
        == [
            "failover: c0 already failed over to c0-standby (epoch local-c0-standby#1): "
            "nothing changed"
        ]
        * 2
    )
    assert standby_stack.directory.version == 2


async def test_an_unsigned_invoke_sent_as_alice_is_refused_and_nothing_is_queued(
    standby_stack: LocalStack,
) -> None:
    alice, bob = user_homed_in("c0", "alice"), user_homed_in("c0", "bob")
    cell = standby_stack.cell("c0")
    # Given bob registered (he has a queue), and SendMessage's deployed name
    bob_client = await connect_as(cell.ws_url, bob)
    await bob_client.close()
    await standby_stack.settled()
    send_message = cell.deployed_name("SendMessage")
    event = json.dumps(forged_send_message(standby_stack, alice, bob)).encode()
    # When a page posts the forged event: unsigned; with a copied SigV4 shape but its Origin
    for headers in ({"Origin": EVIL_ORIGIN}, {}, {"Authorization": FAKE_SIGV4, "Origin": "null"}):
        status, answer = await asyncio.to_thread(
            request, invoke_url(standby_stack, send_message), headers=headers, data=event
        )
        # Then each is refused before any function runs
        assert status == 403, (headers, answer)
    await standby_stack.settled()
    assert standby_stack.invocations_of("SendMessage", cell="c0") == []
    assert await queued_for(standby_stack, bob) == []
    # While the same event, signed as the functions sign, does reach the function
    signed = await asyncio.to_thread(
        signed_lambda(standby_stack).invoke, FunctionName=send_message, Payload=event
    )
    assert signed["StatusCode"] == 200
    await standby_stack.settled()
    assert len(standby_stack.invocations_of("SendMessage", cell="c0")) == 1
    assert len(await queued_for(standby_stack, bob)) == 1  # what the refusals kept out


async def test_a_forged_post_to_a_connection_is_refused_and_nothing_arrives(
    standby_stack: LocalStack,
) -> None:
    bob = user_homed_in("c0", "bob")
    cell = standby_stack.cell("c0")
    # Given bob connected, and his connection id (the console prints it)
    bob_client = await connect_as(cell.ws_url, bob)
    [connection_id] = standby_stack.connection_ids(cell="c0")
    forged = {"type": "message", "from": "alice", "messageId": "m-forged", "body": "x"}
    url = f"{cell.connections_url}/{connection_id}"
    # When a page posts a frame to it, unsigned
    status, _ = await asyncio.to_thread(
        request, url, headers={"Origin": EVIL_ORIGIN}, data=json.dumps(forged).encode()
    )
    # Then it is refused, and bob receives nothing (signed posts: test_management_api.py)
    assert status == 403
    with pytest.raises(TimeoutError):
        await bob_client.next_of("message", timeout=1.0)
    await bob_client.close()


async def test_signed_invokes_still_work(standby_stack: LocalStack) -> None:
    relay = standby_stack.cell("c1").deployed_name("Relay")
    answer = await asyncio.to_thread(
        signed_lambda(standby_stack).invoke, FunctionName=relay, InvocationType="DryRun"
    )
    assert answer["StatusCode"] == 204


async def test_moto_refuses_unsigned_and_browser_requests(standby_stack: LocalStack) -> None:
    endpoint = standby_stack.aws_endpoint
    list_tables = {"X-Amz-Target": "DynamoDB_20120810.ListTables"}
    body = b"{}"
    for headers in (
        {},  # unsigned
        {"Authorization": FAKE_SIGV4, "Origin": EVIL_ORIGIN},  # a page's copy
    ):
        status, _ = await asyncio.to_thread(
            request, endpoint + "/", headers={**list_tables, **headers}, data=body
        )
        assert status == 403
    # moto's dashboard API is a control endpoint: the header, a loopback Host
    data_json = endpoint + "/moto-api/data.json"
    assert (await asyncio.to_thread(request, data_json, method="GET"))[0] == 403
    status, data = await asyncio.to_thread(request, data_json, method="GET", headers=LOCAL_HEADERS)
    assert status == 200 and "dynamodb" in data
    # A signed client over HTTP (not the in-process path) still works
    client = signed_client(standby_stack, "dynamodb", endpoint)
    tables = await asyncio.to_thread(client.list_tables)
    assert standby_stack.cell("c0").table_names[Env.QUEUE_TABLE.value] in tables["TableNames"]


def forged_send_message(stack: LocalStack, sender: TestUser, recipient: TestUser) -> Any:
    """The MESSAGE event API Gateway would send for `sender`'s sendMessage, authorizer
    context and all: what a page would forge to send as someone else."""
    api = Api("forged", "c0", f"127.0.0.1:{stack.port}", stack.aws.region, "123456789012")
    handshake = Handshake(new_id(), epoch_ms(), "127.0.0.1", "evil")
    frame = message_frame(sender, recipient, "forged", "m-forged")
    authorizer = {"principalId": sender.user_id, "userId": sender.user_id}
    return message_event(
        api, handshake, authorizer, "sendMessage", json.dumps(frame), new_id(), new_id()
    )


async def queued_for(stack: LocalStack, user: TestUser) -> list[dict[str, Any]]:
    dump = await asyncio.to_thread(stack.dump, "c0")
    queue = dump[stack.cell("c0").table_names[Env.QUEUE_TABLE.value]]
    return [item for item in queue if user.user_id in json.dumps(item, default=str)]
