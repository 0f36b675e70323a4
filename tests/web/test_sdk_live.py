"""The JavaScript SDK against the real local stack, chatting with the Python SDK.

A Node process (web/test/live/interop.mjs) runs the JS SDK as alice; bob is the Python
SDK in this process. Every frame the stack sends the JS SDK is checked against
docs/asyncapi.yaml by ajv in that process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionPolicy
from messenger_client.keystore import Profile
from messenger_client.store import MessageStatus
from messenger_local import LocalStack
from tests.support.waiting import until
from tests.web.test_node_sdk import NODE, REPO

pytestmark = pytest.mark.e2e

INTEROP = REPO / "web" / "test" / "live" / "interop.mjs"
FAST = ClientSettings(
    connection=ConnectionPolicy(open_timeout=5.0, backoff_base=0.05, backoff_cap=0.5),
    request_timeout=5.0,
    resend_base=1.0,
    resend_cap=2.0,
)


async def next_line(process: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, f"the JS SDK ended before {event!r}"
        document: dict[str, Any] = json.loads(line)
        if document["event"] == event:
            return document


async def test_the_js_sdk_and_the_python_sdk_chat_on_the_local_stack(
    web_stack: LocalStack, tmp_path: Path
) -> None:
    # Given bob on the Python SDK, online
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    bob = MessengerClient(web_stack.ws_url, Profile.create("bob", home=home), settings=FAST)
    bob.start()
    await bob.wait_synced()

    # When alice starts on the JS SDK (her first connect registers her)
    node = await asyncio.create_subprocess_exec(
        NODE,
        str(INTEROP),
        web_stack.ws_url,
        "alice",
        "bob",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await next_line(node, "ready")

        # And bob writes to her
        message = await bob.send_and_wait("alice", "hello from the Python SDK ✓")

        # Then she reads it, both sides pin the same safety numbers, and bob sees it seen
        received = await next_line(node, "received")
        assert received["text"] == "hello from the Python SDK ✓"
        assert received["peerFingerprint"] == bob.fingerprint()
        assert await bob.peer_keys("alice")
        assert bob.fingerprint("alice") == ready["fingerprint"]
        await until(lambda: bob.history("alice")[0].status == MessageStatus.SEEN, timeout=10)
        assert bob.history("alice")[0].message_id == message.message_id
        assert (await next_line(node, "presence"))["online"] is True

        # When she answers, bob gets it and marks it seen; she sees the seen receipt
        sent = await next_line(node, "sent")
        await until(lambda: len(bob.history("alice")) == 2, timeout=10)
        answer = bob.history("alice")[1]
        assert (answer.sender, answer.text) == ("alice", "hello from the JavaScript SDK ✓")
        assert answer.message_id == sent["messageId"]
        await bob.mark_seen("alice")
        await next_line(node, "seen")

        # And when bob goes offline, her subscription tells her
        await bob.close()
        assert (await next_line(node, "peerOffline"))["lastSeen"] > 0
        done = await next_line(node, "done")
        assert done["framesChecked"] > 5
        assert await asyncio.wait_for(node.wait(), 10) == 0
    finally:
        if node.returncode is None:
            node.kill()
        await node.wait()
        await bob.close()
