"""Linked devices in the JavaScript SDK against the real local stack (docs/protocol.md §8).

A Node process (web/test/live/devices.mjs) runs alice's device 1, a second device of hers
with non-extractable WebCrypto keys linked from its ml1: code, and bob; every frame the
stack sends is checked against docs/asyncapi.yaml there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from messenger_local import LocalStack
from tests.web.test_node_sdk import NODE, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRIPT = REPO / "web" / "test" / "live" / "devices.mjs"


async def test_a_linked_webcrypto_device_reads_and_writes_with_device_1_then_is_removed(
    web_stack: LocalStack,
) -> None:
    # Given the JS SDK's three clients on the local stack
    node = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        web_stack.ws_url,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert node.stdout is not None
        steps: dict[str, dict[str, Any]] = {}
        while "done" not in steps:
            line = await asyncio.wait_for(node.stdout.readline(), 60)
            if not line:
                assert node.stderr is not None
                error = (await node.stderr.read()).decode()[-3000:]
                pytest.fail(f"the script ended after {list(steps)}: {error}")
            document = json.loads(line)
            steps[document["event"]] = document

        # When device 1 links the tab from its code, then the list is signed at version 1
        assert steps["linked"]["version"] == 1
        assert steps["linked"]["devices"] == ["1", "tab"]
        assert steps["linked"]["code"].startswith("ml1:")
        # And the tab shows the account's safety number, not its own keys'
        assert steps["tabOnline"]["fingerprint"] == steps["tabOnline"]["phoneFingerprint"]
        assert steps["tabOnline"]["version"] == 1
        # And bob's message reached both devices (and bob got `delivered`)
        assert "bothRead" in steps
        # And each device's message shows on the other as alice's own, to bob
        assert steps["tabSent"]["copyPeer"] == "bob"
        assert steps["tabSent"]["copyOutgoing"] is True
        assert steps["phoneSent"]["copyPeer"] == "bob"
        assert ["alice", "from my phone"] in steps["phoneSent"]["tabHistory"]
        # And removing the tab closes it and leaves device 1 alone at version 2
        assert steps["removed"] == {"event": "removed", "version": 2, "devices": ["1"]}
        assert steps["done"]["framesChecked"] > 5
        assert await asyncio.wait_for(node.wait(), 10) == 0
    finally:
        if node.returncode is None:
            node.kill()
        await node.wait()
