"""The `messenger` command as a person runs it: subprocesses against the local stack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from messenger_client.store import MessageStatus
from messenger_local import LocalStack
from tests.client.conftest import VISIBLE, MakeClient
from tests.support.cli import MESSENGER, environment
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


Messenger = Callable[..., Awaitable[Run]]


@pytest.fixture
def messenger(home: Path, stack: LocalStack) -> Messenger:
    """`await messenger("--profile", "alice", "send", ...)`: the command's exit code and output.

    Run with asyncio so that the stack, in this process, keeps serving meanwhile.
    """

    async def run(
        *args: str, server: str | None = None, timeout: float = 30.0, stdin: bytes | None = None
    ) -> Run:
        process = await asyncio.create_subprocess_exec(
            MESSENGER,
            *args,
            env=environment(home, server or stack.ws_url),
            stdin=None if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    return run


async def test_init_creates_private_keys_once_and_shows_the_safety_number(
    messenger: Messenger,
    home: Path,
) -> None:
    # When alice creates her profile
    created = await messenger("--profile", "alice", "init")
    # Then her keys are on disk for her eyes only, with a safety number to compare
    assert created.code == 0, created.err
    assert "safety number" in created.out
    assert stat.S_IMODE((home / "alice" / "identity.json").stat().st_mode) == 0o600
    mine = await messenger("--profile", "alice", "fingerprint")
    assert mine.out.split("  ")[1] in created.out
    # And a second init refuses to replace them
    again = await messenger("--profile", "alice", "init")
    assert again.code == 1
    assert "already has keys" in again.err
    assert (await messenger("--profile", "alice", "fingerprint")).out == mine.out


async def test_send_read_and_history_from_the_shell(messenger: Messenger) -> None:
    # Given alice and bob, bob registered by a first read
    for name in ("alice", "bob"):
        assert (await messenger("--profile", name, "init")).code == 0
    first_read = await messenger("--profile", "bob", "read")
    assert (first_read.code, first_read.out) == (0, "")
    # When alice sends bob a message
    sent = await messenger("--profile", "alice", "send", "bob", "hello from the shell")
    # Then the command ends once the server stored it
    assert sent.code == 0, sent.err
    assert "sent to bob ✓" in sent.out
    # And bob's read prints it once: sender, time, text
    read = await messenger("read", "--profile", "bob")
    assert read.code == 0, read.err
    assert read.out.count("alice: hello from the shell") == 1
    assert (await messenger("--profile", "bob", "read")).out == ""
    # And alice's history shows it sent, then delivered once her client hears of it
    history = await messenger("--profile", "alice", "history", "bob")
    assert history.out.strip().endswith("alice: hello from the shell  ✓")
    assert (await messenger("--profile", "alice", "read")).code == 0
    history = await messenger("--profile", "alice", "history", "bob")
    assert history.out.strip().endswith("alice: hello from the shell  ✓✓")
    bob_history = await messenger("--profile", "bob", "history", "alice")
    assert bob_history.out.strip().endswith("alice: hello from the shell")


async def test_failures_exit_non_zero_with_a_clear_message(messenger: Messenger) -> None:
    assert (await messenger("--profile", "alice", "init")).code == 0
    # An unknown recipient
    unknown = await messenger("--profile", "alice", "send", "nobody", "hi")
    assert (unknown.code, unknown.out) == (4, "")
    assert "'nobody' is not a user" in unknown.err
    # No server to talk to
    offline = await messenger(
        "--profile", "alice", "send", "bob", "hi", "--timeout", "1", server="ws://127.0.0.1:9/local"
    )
    assert offline.code == 3
    assert "cannot connect to ws://127.0.0.1:9/local" in offline.err
    # A text too long for one frame: refused before anything is sent
    too_long = await messenger("--profile", "alice", "send", "bob", "x" * 24_000)
    assert too_long.code == 1
    assert "too long" in too_long.err
    # A profile that does not exist, or none at all, or a command that does not exist
    missing = await messenger("--profile", "zed", "read")
    assert missing.code == 1 and "run init first" in missing.err
    assert (await messenger("read")).code == 2
    assert (await messenger("--profile", "alice", "shout")).code == 2


async def test_presence_shows_who_is_online_and_when_others_were_last_seen(
    messenger: Messenger,
    client: MakeClient,
) -> None:
    # Given bob online, carol registered but gone, and no dave at all (bob and carol
    # showing their presence to everyone)
    await client("bob", settings=VISIBLE)
    await (await client("carol", settings=VISIBLE)).close()
    assert (await messenger("--profile", "alice", "init")).code == 0
    # When alice asks
    presence = await messenger("--profile", "alice", "presence", "bob", "carol", "dave")
    # Then each gets a line
    assert presence.code == 0, presence.err
    lines = presence.out.splitlines()
    assert lines[0] == "bob  online"
    assert lines[1].startswith("carol  offline, last seen ")
    # And dave (no such user, which looks the same as a hidden one) is not called "offline"
    assert lines[2].startswith("dave  not shown (dave's presence is not shown to you: dave")
    assert "contacts only" in lines[2]


async def test_fingerprints_match_on_both_sides(messenger: Messenger) -> None:
    for name in ("alice", "bob"):
        assert (await messenger("--profile", name, "init")).code == 0
    assert (await messenger("--profile", "bob", "read")).code == 0  # registers bob
    theirs = await messenger("--profile", "alice", "fingerprint", "bob")
    own = await messenger("--profile", "bob", "fingerprint")
    assert theirs.code == 0, theirs.err
    number = own.out.split("  ")[1]
    assert theirs.out.startswith(f"bob  {number}")


async def test_read_watch_prints_messages_as_they_come_until_interrupted(
    home: Path,
    stack: LocalStack,
    messenger: Messenger,
    client: MakeClient,
) -> None:
    # Given bob watching from a terminal
    assert (await messenger("--profile", "bob", "init")).code == 0
    process = await asyncio.create_subprocess_exec(
        MESSENGER,
        "--profile",
        "bob",
        "read",
        "--watch",
        env=environment(home, stack.ws_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await until(lambda: stack.invocations_of("sync"), timeout=10)
    # When alice sends him a message
    alice = await client("alice")
    message = await alice.send_and_wait("bob", "are you watching?")
    # Then it is printed at once, and acknowledged (alice hears it was delivered)
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    assert line.decode().rstrip().endswith("alice: are you watching?")
    await until(lambda: alice.history("bob")[0].status == MessageStatus.DELIVERED)
    assert alice.history("bob")[0].message_id == message.message_id
    # And Ctrl-C ends it cleanly
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_block_unblock_and_blocked_from_the_shell(messenger: Messenger) -> None:
    for name in ("alice", "mallory"):
        assert (await messenger("--profile", name, "init")).code == 0
    # When alice blocks mallory
    blocked = await messenger("--profile", "alice", "block", "mallory")
    assert (blocked.code, blocked.out) == (0, "blocked mallory (1 user blocked in all)\n")
    # Then `blocked` lists her, and what she sends is sent as far as she can tell
    listing = await messenger("--profile", "alice", "blocked")
    assert (listing.code, listing.out) == (0, "mallory\n")
    sent = await messenger("--profile", "mallory", "send", "alice", "let me in")
    assert sent.code == 0, sent.err
    assert (await messenger("--profile", "alice", "read")).out == ""
    # And a bad id is a usage error in words, with no stack trace
    bad = await messenger("--profile", "alice", "block", "Mallory")
    assert bad.code == 1 and "Traceback" not in bad.err and "Mallory" in bad.err
    # And unblocking empties the list
    unblocked = await messenger("--profile", "alice", "unblock", "mallory")
    assert (unblocked.code, unblocked.out) == (0, "unblocked mallory (0 users blocked in all)\n")
    assert (await messenger("--profile", "alice", "blocked")).out == ""


async def test_send_reads_stdin_and_read_history_presence_speak_json(
    messenger: Messenger,
    client: MakeClient,
) -> None:
    for name in ("alice", "bob"):
        assert (await messenger("--profile", name, "init")).code == 0
    assert (await messenger("--profile", "bob", "read")).code == 0
    # When alice pipes a two-line text into `send -`
    piped = await messenger("--profile", "alice", "send", "bob", "-", stdin=b"line one\nline two\n")
    assert piped.code == 0, piped.err
    # Then bob's `read --json` gives it whole, as one JSON object a line
    read = await messenger("--profile", "bob", "read", "--json")
    assert read.code == 0, read.err
    [received] = [json.loads(line) for line in read.out.splitlines()]
    assert (received["from"], received["text"]) == ("alice", "line one\nline two")
    assert received["outgoing"] is False and received["status"] == "received"
    # And `history --json` and `presence --json` too
    history = await messenger("--profile", "alice", "history", "bob", "--json")
    [sent] = [json.loads(line) for line in history.out.splitlines()]
    assert sent["messageId"] == received["messageId"] and sent["outgoing"] is True
    await client("carol", settings=VISIBLE)
    presence = await messenger("--profile", "alice", "presence", "carol", "dave", "--json")
    assert [json.loads(line) for line in presence.out.splitlines()] == [
        {"userId": "carol", "online": True, "lastSeen": None, "shown": True},
        {"userId": "dave", "online": False, "lastSeen": None, "shown": False},
    ]
    # And an empty stdin sends nothing
    empty = await messenger("--profile", "alice", "send", "bob", "-", stdin=b"\n")
    assert empty.code == 2 and "nothing to send" in empty.err


async def test_visibility_shows_and_sets_who_sees_ones_presence(
    messenger: Messenger,
    client: MakeClient,
) -> None:
    for name in ("alice", "bob"):
        assert (await messenger("--profile", name, "init")).code == 0
    assert (await messenger("--profile", "bob", "read")).code == 0
    assert (await messenger("--profile", "alice", "send", "bob", "hi")).code == 0
    # By default: contacts, the people alice wrote to
    shown = await messenger("--profile", "alice", "visibility")
    assert shown.code == 0, shown.err
    assert "contacts only" in shown.out and "(bob)" in shown.out
    # When alice shows it to everyone, Then carol (no contact) sees her online, from
    # a later connection too (the choice is kept)
    assert "to everyone" in (await messenger("--profile", "alice", "visibility", "everyone")).out
    assert "to everyone" in (await messenger("--profile", "alice", "visibility")).out
    carol = await client("carol")
    watching = await messenger("--profile", "alice", "presence", "alice")
    assert watching.code == 0
    [alice_seen] = await carol.get_presence(["alice"])
    assert alice_seen.last_seen is not None  # shown: she was online, and when she left
    # And `nobody` hides it again
    assert "to nobody" in (await messenger("--profile", "alice", "visibility", "nobody")).out
    [alice_hidden] = await carol.get_presence(["alice"])
    assert alice_hidden.hidden


async def test_ctrl_c_during_a_hung_send_exits_130_and_says_what_was_not_sent(
    home: Path,
    stack: LocalStack,
    messenger: Messenger,
) -> None:
    # Given alice knows bob's keys, and then no server answers
    for name in ("alice", "bob"):
        assert (await messenger("--profile", name, "init")).code == 0
    assert (await messenger("--profile", "bob", "read")).code == 0
    assert (await messenger("--profile", "alice", "send", "bob", "first")).code == 0
    process = await asyncio.create_subprocess_exec(
        MESSENGER,
        "--profile",
        "alice",
        "send",
        "bob",
        "stuck",
        "--timeout",
        "60",
        env=environment(home, "ws://127.0.0.1:9/local"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(3.0)  # started, and waiting for a server
    # When the user presses Ctrl-C
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    # Then it exits 130, says the message is not stored yet, and shows no stack trace
    assert process.returncode == 130
    assert "the message to bob was not sent" in err.decode()
    assert "Traceback" not in err.decode()
    assert "sent to bob" not in out.decode()


async def test_ctrl_c_at_once_exits_130_without_a_stack_trace(home: Path) -> None:
    # (Before Python has started at all, ~0.05 s, the interpreter itself reports it.)
    for delay in (0.3, 0.6, 1.0):
        process = await asyncio.create_subprocess_exec(
            MESSENGER,
            "--profile",
            "alice",
            "read",
            env=environment(home, "ws://127.0.0.1:9/local"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
        assert "Traceback" not in err.decode()
        assert process.returncode in (130, 1), err  # 1: it was quicker (no such profile)


async def test_read_on_a_terminal_says_when_there_is_nothing_new(
    home: Path,
    stack: LocalStack,
    messenger: Messenger,
) -> None:
    assert (await messenger("--profile", "bob", "init")).code == 0
    # When bob reads in a terminal (a pseudo-terminal here) and nothing came
    leader, follower = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            MESSENGER,
            "--profile",
            "bob",
            "read",
            env=environment(home, stack.ws_url),
            stdout=follower,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.wait_for(process.wait(), 30)
        output = os.read(leader, 4096).decode()
    finally:
        os.close(leader)
        os.close(follower)
    # Then it says so, instead of printing nothing
    assert process.returncode == 0
    assert "no new messages" in output
