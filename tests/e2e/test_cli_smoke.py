"""`messenger local` as a person runs it: a subprocess, real clients, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from messenger_local.signed_url import LocalKeys, signed_url
from messenger_protocol.cells import Directory
from tests.support.cells import user_homed_in
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


async def test_the_functions_own_logs_go_to_the_function_log(
    messenger_local: RunningCommand, tmp_path: Path
) -> None:
    # Given `messenger local` running, its functions logging at INFO (its default)
    ws_url = (await messenger_local.read_until("WebSocket URL")).split()[-1]
    await messenger_local.read_until("Ctrl-C stops it.")
    # When a client asks for the keys of nobody, which its function refuses and logs
    client = await connect_as(ws_url, TestUser("alice"))
    answer = await client.request({"action": "getKeys", "userId": "nobody"})
    assert answer["type"] == "error"
    await client.close()
    assert await stop_with_ctrl_c(messenger_local) == 0
    # Then the function's JSON log line is in the function log, and not on the console
    logged = [json.loads(line) for line in (tmp_path / "functions.log").read_text().splitlines()]
    assert any(entry.get("message") == "refused" for entry in logged)
    console = await messenger_local.rest()
    assert not any(line.startswith("{") for line in console)
    assert any(" getKeys " in line and "error" in line for line in console)


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
    assert await client.request({"action": "ping"}) == {"type": "pong", "dv": 0}
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
    assert '{"type":"pong","dv":0}' in (await output).decode()
    assert await stop_with_ctrl_c(messenger_local) == 0


async def test_cells_each_print_their_url_and_serve_their_users(tmp_path: Path) -> None:
    # Given `messenger local --cells 2` running
    async with run_messenger_local(tmp_path / "functions.log", "--cells", "2") as command:
        await command.read_until("Ctrl-C stops it.")
        banner = "\n".join(command.lines)
        urls = dict(re.findall(r"^  cell (c\d) +(ws://\S+)", banner, re.MULTILINE))
        [directory_url] = re.findall(r"^  directory +(http://\S+)", banner, re.MULTILINE)
        # Then the banner names each cell's URL and the directory, which agrees with it
        assert urls == {
            "c0": f"ws://127.0.0.1:{command.port}/c0",
            "c1": f"ws://127.0.0.1:{command.port}/c1",
        }
        directory = Directory.parse(await asyncio.to_thread(fetch_json, directory_url))
        assert dict(directory.urls) == urls
        # And the directory key it prints is the one that signed it
        [key] = re.findall(r"^  directory key +(\S+)", banner, re.MULTILINE)
        assert directory.verifies(key)
        # And a user of each cell connects at home
        for cell in ("c0", "c1"):
            user = user_homed_in(cell, "smoke")
            client = await connect_as(directory.home_url(user.user_id), user)
            assert await client.request({"action": "ping"}) == {
                "type": "pong",
                "dv": directory.version,
            }
            await client.close()
        assert await stop_with_ctrl_c(command) == 0
        lines = await command.rest()
        assert any(line.split()[1:3] == ["c1", "ping"] for line in lines if " ping " in line)


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())
