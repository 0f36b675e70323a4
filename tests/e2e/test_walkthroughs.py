"""The README's cells and failover walkthroughs, tried as a new user would (issues 13, 14).

`messenger local --cells 2 [--standby]` runs in a subprocess, and two people chat with
the `messenger` command through `--directory`, each in a process of its own, as in two
terminals. alice's home is c0 and carol's c1 (the README names them: keep them in step).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from messenger_client.inbox import EPOCH_KEY
from messenger_client.keystore import Profile
from messenger_client.store import HistoryStore
from messenger_local.cells_harness import id_homed_in
from tests.support.cli import MESSENGER, environment
from tests.support.local_command import RunningCommand, messenger_local
from tests.support.local_control import post_local
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = id_homed_in("c0", "alice", ("c0", "c1"))
CAROL = id_homed_in("c1", "carol", ("c0", "c1"))
COMMAND_TIMEOUT = 30.0
# Longer than the whole walkthrough before the failover: every write alice's cell made
# (her registration, the receipts queued for her) is lost with it, as in the worst case.
REPLICATION_LAG = 120


@dataclass(frozen=True)
class Person:
    """One CLI profile, its commands run as its user types them in their terminal."""

    name: str
    home: Path
    directory_url: str

    def argv(self, *args: str) -> list[str]:
        return [MESSENGER, "--directory", self.directory_url, "--profile", self.name, *args]

    async def run(self, *args: str) -> str:
        """`messenger --directory URL --profile NAME ARGS...`: its output, once it exits 0."""
        process = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            env=environment(self.home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        assert process.returncode == 0, (args, process.returncode, err.decode())
        return out.decode()

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """The command left running (`read --watch`), as in a terminal of its own."""
        return await asyncio.create_subprocess_exec(
            *self.argv(*args),
            env=environment(self.home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def history(self, peer: str) -> list[str]:
        """`history PEER`, each line without its time: `sender: text  marks`."""
        lines = (await self.run("history", peer)).splitlines()
        return [line.split("  ", 1)[1] for line in lines]

    def last_epoch(self) -> str | None:
        """The cell's epoch in the last syncDone this profile saw (kept in its history)."""
        profile = Profile.load(self.name, self.home)
        store = HistoryStore(profile.history_path, profile.user_id)
        try:
            return store.get_meta(EPOCH_KEY)
        finally:
            store.close()


@dataclass(frozen=True)
class Walkthrough:
    """`messenger local --cells 2 ...` running, and alice and carol with a profile each."""

    command: RunningCommand
    directory_url: str
    alice: Person
    carol: Person

    def cells_serving(self, user: str) -> set[str]:
        """The stages (cells) the console shows running an invocation for `user`."""
        return {line.split()[1] for line in self.command.lines if f" user={user} " in line}

    def connected(self, user: str, stage: str) -> bool:
        """The console shows `user` connected at `stage` (its $connect succeeded)."""
        return any(
            line.split()[1:3] == [stage, "$connect"]
            and f" user={user} " in line
            and " 200 " in line
            for line in self.command.lines
        )

    def console_has(self, text: str) -> bool:
        return any(text in line for line in self.command.lines)

    async def fail_over(self, cell: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.command.port}/_local/failover/{cell}"
        status, answer = await asyncio.to_thread(post_local, url)
        assert status == 200, answer
        return dict(answer)


async def start_walkthrough(tmp_path: Path, *options: str) -> AsyncIterator[Walkthrough]:
    async with messenger_local(tmp_path / "functions.log", "--cells", "2", *options) as command:
        await command.read_until("Ctrl-C stops it.")
        banner = "\n".join(command.lines)
        [directory_url] = re.findall(r"^  directory +(http://\S+)", banner, re.MULTILINE)
        # The console keeps being read: its lines show which cell served whom, and a full
        # pipe would stall the stack.
        follower = asyncio.create_task(command.follow())
        try:
            home = tmp_path / "profiles"
            alice, carol = (Person(name, home, directory_url) for name in (ALICE, CAROL))
            for person in (alice, carol):
                assert "created profile" in await person.run("init")
            yield Walkthrough(command, directory_url, alice, carol)
        finally:
            follower.cancel()


@pytest.fixture
async def cells(tmp_path: Path) -> AsyncIterator[Walkthrough]:
    async for walkthrough in start_walkthrough(tmp_path):
        yield walkthrough


@pytest.fixture
async def chatting_with_standbys(tmp_path: Path) -> AsyncIterator[Walkthrough]:
    """alice and carol have chatted (`chat_both_ways`), alice's cell c0 not yet replicated
    at all: its failover loses every write it made."""
    lag = ("--standby", "--replication-lag", str(REPLICATION_LAG))
    async for walkthrough in start_walkthrough(tmp_path, *lag):
        await chat_both_ways(walkthrough.alice, walkthrough.carol)
        yield walkthrough


async def chat_both_ways(alice: Person, carol: Person) -> None:
    """The README's first steps: a message each way, read, seen, and the marks."""
    assert await carol.run("read") == ""  # carol's first connection registers her
    assert (await alice.run("send", CAROL, "hi carol")).startswith(f"sent to {CAROL} ✓ (")
    assert (await carol.run("read", "--seen")).endswith(f"  {ALICE}: hi carol\n")
    assert (await carol.run("send", ALICE, "hi alice")).startswith(f"sent to {ALICE} ✓ (")
    assert (await alice.run("read", "--seen")).endswith(f"  {CAROL}: hi alice\n")
    assert await alice.history(CAROL) == [f"{ALICE}: hi carol  ✓✓ seen", f"{CAROL}: hi alice"]
    assert await carol.run("read") == ""  # takes in alice's receipts
    assert await carol.history(ALICE) == [f"{ALICE}: hi carol", f"{CAROL}: hi alice  ✓✓ seen"]


async def test_two_people_in_two_cells_chat_through_the_directory(cells: Walkthrough) -> None:
    alice, carol = cells.alice, cells.carol
    # Given alice and carol, whose ids the directory homes in different cells
    directory = await asyncio.to_thread(fetch_json, cells.directory_url)
    assert set(directory["cells"]) == {"c0", "c1"}
    # When they chat with the `messenger` command through the directory
    # Then each reads the other's messages and sees ✓✓ and seen on their own
    await chat_both_ways(alice, carol)
    # And alice sees carol online while carol's `read --watch` runs, and when she left
    watching = await carol.start("read", "--watch")
    try:
        await until_online(alice, CAROL)
    finally:
        watching.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watching.wait(), COMMAND_TIMEOUT) == 0
    assert (await alice.run("presence", CAROL)).startswith(f"{CAROL}  offline, last seen ")
    # And each was served by their home cell only
    assert cells.cells_serving(ALICE) == {"c0"}
    assert cells.cells_serving(CAROL) == {"c1"}


async def fail_over_alices_cell(walkthrough: Walkthrough) -> str:
    """POST /_local/failover/c0, its answer checked: the standby's new epoch."""
    primary_epoch = walkthrough.alice.last_epoch()
    assert primary_epoch is not None
    failover = await walkthrough.fail_over("c0")
    # The answer names the standby's URL, a new epoch, and the writes lost with c0
    standby_url = f"ws://127.0.0.1:{walkthrough.command.port}/c0-standby"
    assert failover["cell"] == "c0" and failover["url"] == standby_url
    assert failover["epoch"] != primary_epoch
    assert failover["droppedWrites"] > 0
    directory = await asyncio.to_thread(fetch_json, walkthrough.directory_url)
    assert directory["cells"]["c0"]["url"] == standby_url
    # And terminal 1 says so, once: asked again, it says c0 already failed over
    switched = f"failover: c0 -> c0-standby (epoch {failover['epoch']}, "
    await until(lambda: walkthrough.console_has(switched))
    assert failover["alreadyFailedOver"] is False
    assert await walkthrough.fail_over("c0") == failover | {"alreadyFailedOver": True}
    await until(lambda: walkthrough.console_has("failover: c0 already failed over to c0-standby"))
    assert sum(switched in line for line in walkthrough.command.lines) == 1
    return str(failover["epoch"])


def sends_through_the_standby(walkthrough: Walkthrough) -> list[str]:
    """The console's sendMessage lines of alice's at c0's standby."""
    return [
        line
        for line in walkthrough.command.lines
        if line.split()[1:3] == ["c0-standby", "sendMessage"] and f" user={ALICE} " in line
    ]


async def test_a_message_whose_receipt_the_failover_lost_is_sent_again(
    chatting_with_standbys: Walkthrough,
) -> None:
    # Given alice and carol chatting, with alice's cell c0 not yet replicated at all
    walkthrough = chatting_with_standbys
    alice, carol = walkthrough.alice, walkthrough.carol
    # And alice's last message read by carol, its ✓✓ queued in c0 while alice is away
    await alice.run("send", CAROL, "before the failover")
    assert (await carol.run("read")).endswith(f"  {ALICE}: before the failover\n")
    assert (await alice.history(CAROL))[-1] == f"{ALICE}: before the failover  ✓"
    # When alice's cell fails over to its standby, losing that receipt
    epoch = await fail_over_alices_cell(walkthrough)
    # And they keep chatting, with the same commands
    assert (await alice.run("send", CAROL, "after the failover")).startswith(f"sent to {CAROL}")
    assert (await carol.run("read", "--seen")).endswith(f"  {ALICE}: after the failover\n")
    assert (await carol.run("send", ALICE, "still there?")).startswith(f"sent to {ALICE} ✓")
    assert (await alice.run("read", "--seen")).endswith(f"  {CAROL}: still there?\n")
    # Then alice's client found the standby through the directory and saw its epoch
    assert alice.last_epoch() == epoch
    # And it sent the undelivered message again (§7) before the new one, through the
    # standby; carol's client dropped the copy, and acked it: alice has her ✓✓
    assert len(sends_through_the_standby(walkthrough)) >= 2  # more only if an ack was slow
    assert await carol.run("read") == ""  # takes in alice's receipts
    assert await alice.history(CAROL) == [
        f"{ALICE}: hi carol  ✓✓ seen",
        f"{CAROL}: hi alice",
        f"{ALICE}: before the failover  ✓✓ seen",
        f"{ALICE}: after the failover  ✓✓ seen",
        f"{CAROL}: still there?",
    ]
    assert await carol.history(ALICE) == [
        f"{ALICE}: hi carol",
        f"{CAROL}: hi alice  ✓✓ seen",
        f"{ALICE}: before the failover",
        f"{ALICE}: after the failover",
        f"{CAROL}: still there?  ✓✓ seen",
    ]


async def test_an_open_client_reconnects_to_the_standby_and_the_chat_goes_on(
    chatting_with_standbys: Walkthrough,
) -> None:
    # Given alice and carol chatting, with alice's cell c0 not yet replicated at all
    walkthrough = chatting_with_standbys
    alice, carol = walkthrough.alice, walkthrough.carol
    # And alice's `read --watch` open, as a chat stays open, and a message of hers that
    # carol, away, has not read yet
    watching = await alice.start("read", "--watch")
    try:
        await until_online(carol, ALICE)
        await alice.run("send", CAROL, "are you there?")
        # When alice's cell fails over to its standby
        await fail_over_alices_cell(walkthrough)
        # Then alice's open client reconnects, through the directory, to the standby,
        # registering her again there (c0 lost her registration: until she is back, the
        # standby answers UNKNOWN_RECIPIENT for her)
        await until(lambda: walkthrough.connected(ALICE, "c0-standby"), timeout=COMMAND_TIMEOUT)
        # And when carol comes back, reads, and answers, alice's open client shows it
        assert (await carol.run("read", "--seen")).endswith(f"  {ALICE}: are you there?\n")
        assert (await carol.run("send", ALICE, "yes")).startswith(f"sent to {ALICE} ✓")
        assert (await next_line(watching)).endswith(f"  {CAROL}: yes")
    finally:
        watching.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watching.wait(), COMMAND_TIMEOUT) == 0
    assert watching.stderr is not None
    assert "offline (connection lost); reconnecting" in (await watching.stderr.read()).decode()
    # And after it, alice's next message goes through the standby too
    assert (await alice.run("send", CAROL, "good")).startswith(f"sent to {CAROL} ✓")
    assert (await carol.run("read", "--seen")).endswith(f"  {ALICE}: good\n")
    assert await alice.run("read", "--seen") == ""  # takes in carol's receipts
    assert await carol.run("read") == ""  # takes in alice's
    # And every message is in each history exactly once, each with its ✓✓
    assert await alice.history(CAROL) == [
        f"{ALICE}: hi carol  ✓✓ seen",
        f"{CAROL}: hi alice",
        f"{ALICE}: are you there?  ✓✓ seen",
        f"{CAROL}: yes",
        f"{ALICE}: good  ✓✓ seen",
    ]
    assert await carol.history(ALICE) == [
        f"{ALICE}: hi carol",
        f"{CAROL}: hi alice  ✓✓ seen",
        f"{ALICE}: are you there?",
        f"{CAROL}: yes  ✓✓ seen",
        f"{ALICE}: good",
    ]


async def until_online(person: Person, peer: str) -> None:
    """`presence PEER` until it says online (the watcher's connect may still be on its way)."""
    for _ in range(int(COMMAND_TIMEOUT / 0.5)):
        if await person.run("presence", peer) == f"{peer}  online\n":
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{peer} never showed online to {person.name}")


async def next_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), COMMAND_TIMEOUT)
    return line.decode().rstrip("\n")


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())
