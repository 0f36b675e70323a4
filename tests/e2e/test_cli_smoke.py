"""`messenger local` as a person runs it: a subprocess, real clients, Ctrl-C."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_local.signed_url import LocalKeys, signed_url
from tests.support.identities import TestUser
from tests.support.local_command import REPO, RunningCommand
from tests.support.local_command import messenger_local as run_messenger_local
from tests.support.ws_client import connect_as

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WSCAT = REPO / "node_modules" / ".bin" / "wscat"


@pytest.fixture
async def messenger_local(tmp_path: Path) -> AsyncIterator[RunningCommand]:
    async with run_messenger_local(tmp_path / "functions.log") as command:
        yield command


async def stop_with_ctrl_c(command: RunningCommand) -> int:
    command.process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(command.process.wait(), 10)


async def test_starts_serves_a_client_and_stops_on_ctrl_c(
    messenger_local: RunningCommand,
) -> None:
    # Given `messenger local` running
    url_line = await messenger_local.read_until("WebSocket URL")
    ws_url = url_line.split()[-1]
    await messenger_local.read_until("Ctrl-C stops it.")
    banner = "\n".join(messenger_local.lines)
    assert "@connections API  http://127.0.0.1:" in banner and "AWS (moto)" in banner
    assert "wscat -c" in banner
    # When a client connects and pings
    client = await connect_as(ws_url, TestUser("alice"))
    assert await client.request({"action": "ping"}) == {"type": "pong"}
    await client.close()
    # Then Ctrl-C stops it cleanly, having logged one line per invocation
    assert await stop_with_ctrl_c(messenger_local) == 0
    lines = await messenger_local.rest()
    [ping] = [line for line in lines if " ping " in line]
    assert "conn=" in ping and "user=alice" in ping and "200 ok" in ping and ping.endswith("ms")
    assert any("$disconnect" in line for line in lines)
    assert lines[-1] == "stopped"


@pytest.mark.skipif(
    not WSCAT.exists() or shutil.which("node") is None,
    reason="wscat is installed by `npm ci` (./dev test does it)",
)
async def test_wscat_connects_with_a_signed_url(messenger_local: RunningCommand) -> None:
    ws_url = (await messenger_local.read_until("WebSocket URL")).split()[-1]
    url = signed_url(ws_url, LocalKeys.generate("wscat-user"))
    wscat = await asyncio.create_subprocess_exec(
        str(WSCAT),
        "-c",
        url,
        "-x",
        '{"action":"ping"}',
        "-w",
        "1",
        # wscat quits as soon as its stdin ends: keep it open.
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert wscat.stdout is not None and wscat.stdin is not None
    output = asyncio.create_task(wscat.stdout.read())
    assert await asyncio.wait_for(wscat.wait(), 20) == 0
    wscat.stdin.close()
    assert '{"type":"pong"}' in (await output).decode()
    assert await stop_with_ctrl_c(messenger_local) == 0
