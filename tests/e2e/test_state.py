"""`messenger local --state DIR` keeps users and queued messages across restarts.

From issue 12: after `messenger local` restarted, acked messages were gone (`sync` count
0), and a registered id could be claimed again by anyone with new keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import urllib.request
from pathlib import Path

import pytest

from messenger_local.state import SAVE_EVERY_SECONDS
from messenger_protocol.cells import Directory
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.local_command import REPO, RunningCommand, messenger_local
from tests.support.ws_client import connect_as, handshake_status, message_frame, signed_url

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def ready(command: RunningCommand) -> tuple[str, str]:
    """The WebSocket URL and the banner's state line, once the banner is out."""
    ws_url = (await command.read_until("WebSocket URL")).split()[-1]
    state = (await command.read_until("  state ")).split(maxsplit=1)[1]
    await command.read_until("Ctrl-C stops it.")
    return ws_url, state


async def test_a_restart_keeps_users_and_queued_messages(tmp_path: Path) -> None:
    alice, bob = TestUser("alice"), TestUser("bob")
    state = tmp_path / "state"
    # Given `messenger local --state DIR`, where bob registered and went away, and
    # alice's message to him is stored (acked) while he is offline
    async with messenger_local(tmp_path / "first.log", "--state", str(state)) as first:
        ws_url, state_line = await ready(first)
        assert state_line.startswith(f"kept in {state} (new;")
        await (await connect_as(ws_url, bob)).close()
        a = await connect_as(ws_url, alice)
        ack = await a.request(message_frame(alice, bob, "see you after the restart", "kept-0001"))
        assert ack["type"] == "ack" and ack["messageId"] == "kept-0001"
        await a.close()
        # When it stops and starts again on the same directory
        first.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(first.process.wait(), 20) == 0
    async with messenger_local(tmp_path / "second.log", "--state", str(state)) as second:
        ws_url, state_line = await ready(second)
        assert state_line.startswith(f"kept in {state} (restored from the last run;")
        # Then bob, connecting as a known user, finds the message waiting for sync
        b = await connect_as(ws_url, bob, with_keys=False)
        await b.send({"action": "sync"})
        delivered = await b.next_of("message")
        assert delivered["messageId"] == "kept-0001" and delivered["from"] == "alice"
        assert bob.decrypt_from(alice, delivered["body"], delivered["nonce"]) == (
            "see you after the restart"
        )
        assert (await b.next_of("syncDone"))["count"] == 1
        await b.close()
        # And nobody else can claim "bob" with other keys
        impostor = TestUser("bob")
        assert await handshake_status(signed_url(ws_url, impostor)) == 403


async def test_a_crash_loses_at_most_the_last_second(tmp_path: Path) -> None:
    alice = TestUser("alice")
    state = tmp_path / "state"
    # Given alice registered on `messenger local --state DIR` a while before it is killed
    async with messenger_local(tmp_path / "first.log", "--state", str(state)) as first:
        ws_url, _ = await ready(first)
        await (await connect_as(ws_url, alice)).close()
        await asyncio.sleep(2 * SAVE_EVERY_SECONDS + 0.5)
        first.process.kill()
        await first.process.wait()
    # When it starts again on the same directory
    async with messenger_local(tmp_path / "second.log", "--state", str(state)) as second:
        ws_url, state_line = await ready(second)
        # Then alice is still registered: her keys connect, other keys are refused
        assert "restored from the last run" in state_line
        assert await handshake_status(signed_url(ws_url, TestUser("alice"))) == 403
        assert await handshake_status(signed_url(ws_url, alice, with_keys=False)) == 101


async def test_by_default_state_is_kept_under_the_project_and_fresh_starts_empty(
    tmp_path: Path,
) -> None:
    # A stage of this test's own, so that the folder is this test's (and removed after)
    stage = f"pytest{os.getpid()}"
    folder = REPO / ".messenger-local" / stage
    bob = TestUser("bob")
    options: tuple[str, ...] = ("--stage", stage)
    try:
        # Given `messenger local` without --state: kept in the project's folder, new
        async with messenger_local(tmp_path / "1.log", *options, default_state=True) as first:
            ws_url, state_line = await ready(first)
            assert state_line.startswith(f"kept in {folder} (new;")
            await (await connect_as(ws_url, bob)).close()
            first.process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(first.process.wait(), 20) == 0
        # When it starts again, Then bob is still a user: his id is not free for others
        async with messenger_local(tmp_path / "2.log", *options, default_state=True) as second:
            ws_url, state_line = await ready(second)
            assert state_line.startswith(f"kept in {folder} (restored from the last run;")
            assert "--fresh starts empty" in state_line
            assert await handshake_status(signed_url(ws_url, TestUser("bob"))) == 403
            second.process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(second.process.wait(), 20) == 0
        # And with --fresh it starts empty, and says so
        options = (*options, "--fresh")
        async with messenger_local(tmp_path / "3.log", *options, default_state=True) as third:
            ws_url, state_line = await ready(third)
            assert state_line.startswith(f"kept in {folder} (new;")
            await (await connect_as(ws_url, TestUser("bob"))).close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_banner_says_how_to_point_the_cli_here_and_that_registrations_are_free(
    tmp_path: Path,
) -> None:
    async with messenger_local(tmp_path / "functions.log") as command:
        ws_url, _ = await ready(command)
        lines = "\n".join(command.lines)
        assert f"  export MESSENGER_SERVER={ws_url}" in lines
        assert "registrations     not limited" in lines
    async with messenger_local(
        tmp_path / "limited.log", "--registrations-per-hour", "5"
    ) as command:
        await ready(command)
        assert any("at most 5 new users per address and hour" in x for x in command.lines)


async def test_cells_keep_their_tables_and_only_with_as_many_cells(tmp_path: Path) -> None:
    alice, dave = user_homed_in("c0", "alice"), user_homed_in("c1", "dave")
    state = tmp_path / "state"
    # Given two cells kept in DIR, where alice (c0) wrote to dave (c1) while he was away
    options = ("--cells", "2", "--state", str(state))
    async with messenger_local(tmp_path / "first.log", *options) as first:
        await first.read_until("Ctrl-C stops it.")
        urls = {cell: f"ws://127.0.0.1:{first.port}/{cell}" for cell in ("c0", "c1")}
        await (await connect_as(urls["c1"], dave)).close()
        a = await connect_as(urls["c0"], alice)
        ack = await a.request(message_frame(alice, dave, "across cells and restarts", "kept-0002"))
        assert ack["type"] == "ack"
        await a.close()
        first.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(first.process.wait(), 20) == 0
    # When they start again with as many cells: dave finds the message in his cell
    async with messenger_local(tmp_path / "second.log", *options) as second:
        await second.read_until("Ctrl-C stops it.")
        b = await connect_as(f"ws://127.0.0.1:{second.port}/c1", dave, with_keys=False)
        await b.send({"action": "sync"})
        assert (await b.next_of("message"))["messageId"] == "kept-0002"
        await b.close()
    # But without --cells the same directory is refused: its users' homes would move
    async with messenger_local(tmp_path / "third.log", "--state", str(state)) as third:
        assert await asyncio.wait_for(third.process.wait(), 30) == 1
        assert third.process.stderr is not None
        assert "started with --cells 2" in (await third.process.stderr.read()).decode()


async def published_directory(command: RunningCommand) -> Directory:
    """The directory a stack of cells serves, from the URL its banner names."""
    url = (await command.read_until("  directory ")).split()[1]
    await command.read_until("Ctrl-C stops it.")

    def fetch() -> Directory:
        with urllib.request.urlopen(url, timeout=5) as response:
            return Directory.parse(json.loads(response.read()))

    return await asyncio.to_thread(fetch)


async def test_after_fresh_the_directory_version_is_above_any_a_client_accepted(
    tmp_path: Path,
) -> None:
    # docs/protocol.md §6: a client refuses a directory older than the one it accepted.
    state = tmp_path / "state"
    options = ("--cells", "1", "--state", str(state))
    # Given a stack of cells with kept state, whose directory a client accepted
    async with messenger_local(tmp_path / "first.log", *options) as first:
        accepted = await published_directory(first)
        first.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(first.process.wait(), 20) == 0
    # When it starts again with --fresh (everything kept is forgotten)
    async with messenger_local(tmp_path / "second.log", *options, "--fresh") as second:
        published = await published_directory(second)
        # Then its banner says it started empty
        state_line = next(line for line in second.lines if line.startswith("  state "))
        assert f"kept in {state} (new;" in state_line
        # And its first directory is newer than the one the client kept: not refused
        assert published.version > accepted.version
        # And the banner names that version
        assert f"(version {published.version})" in "\n".join(second.lines)
