"""Hold, never drop: a message that does not open is kept (its ciphertext) before it is
acked, survives restarts, is shown as held, and opens in order once the user trusts the
sender's new keys (docs/protocol.md §7: the client is the only place a message lives)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_client.client import MessengerClient
from messenger_client.events import MessageRejected
from messenger_client.keystore import Profile
from messenger_client.store import HistoryStore, HoldReason, MessageStatus, held_notices
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.encoding import b64url_encode
from tests.client.conftest import FAST, Clients
from tests.support.cli import MESSENGER, environment
from tests.support.identities import TestUser
from tests.support.waiting import until
from tests.support.ws_client import connect_as

pytestmark = pytest.mark.e2e


async def run_cli(home: Path, server: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        MESSENGER,
        *args,
        env=environment(home, server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30.0)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


UNREADABLE_FROM_BOB = (
    "1 message from bob could not be opened (damaged or not meant for this device)"
)
KEY_CHANGED_FROM_BOB = "1 message from bob is held until you verify bob's new safety number"


async def send_garbage(ws_url: str, sender: Profile, to: str, message_id: str) -> None:
    """What `sender`'s own keys send, over a plain WebSocket: a body and nonce of random
    bytes, which no key opens (docs/protocol.md §5)."""
    identity = sender.identity
    raw = TestUser(identity.user_id, identity.signing_key, identity.box_private_key)
    socket = await connect_as(ws_url, raw, with_keys=False)
    ack = await socket.request(
        {
            "action": "sendMessage",
            "messageId": message_id,
            "to": to,
            "body": b64url_encode(secrets.token_bytes(48)),
            "nonce": b64url_encode(secrets.token_bytes(24)),
            "sentAt": 1,
        }
    )
    assert ack["type"] == "ack"
    await socket.close()


async def test_a_message_after_a_key_change_is_held_acked_then_shown_after_trust(
    shared_aws: EmbeddedAws,
    home: Path,
    tmp_path: Path,
) -> None:
    # Given alice and bob talked through the CLI: alice pinned bob's keys
    for name in ("alice", "bob"):
        assert (await run_cli(home, "ws://unused", "--profile", name, "init"))[0] == 0
    async with LocalStack(aws=shared_aws) as first:
        assert (await run_cli(home, first.ws_url, "--profile", "bob", "read"))[0] == 0
        code, _, err = await run_cli(home, first.ws_url, "--profile", "alice", "send", "bob", "hi")
        assert code == 0, err
    # And bob re-registered with new keys (a fresh stack; a new profile elsewhere)
    elsewhere = tmp_path / "bobs-new-phone"
    elsewhere.mkdir(mode=0o700)
    new_bob = Profile.create("bob", home=elsewhere)
    async with LocalStack(aws=shared_aws) as second:
        assert (await run_cli(home, second.ws_url, "--profile", "alice", "read"))[0] == 0
        async with MessengerClient(second.ws_url, new_bob, settings=FAST) as bob:
            await bob.wait_synced()
            first_id = (await bob.send_and_wait("alice", "new phone, same bob")).message_id
            second_id = (await bob.send_and_wait("alice", "please verify me")).message_id
            # When alice reads (a new process each time: what is held is on disk)
            code, out, err = await run_cli(home, second.ws_url, "--profile", "alice", "read")
            # Then she is told, in words, that 2 messages are held and what to do
            assert code == 0, err
            assert out == ""
            assert "2 messages from bob are held until you verify bob's new safety number" in err
            assert "messenger trust bob" in err
            # And the server's copies were acked only after alice stored them: the
            # ciphertext is in her history file, and bob's ✓✓ is true
            await until(lambda: len(second.invocations_of("ack")) >= 1)
            store = HistoryStore(Profile.load("alice", home).history_path, "alice")
            try:
                assert [held.message_id for held in store.held("bob")] == [first_id, second_id]
            finally:
                store.close()
            await until(
                lambda: all(
                    (m := bob.store.get("bob", mid)) is not None
                    and m.status == MessageStatus.DELIVERED
                    for mid in (first_id, second_id)
                )
            )
            # And a second read still says so (held across restarts, not acked twice)
            again = await run_cli(home, second.ws_url, "--profile", "alice", "read")
            assert "2 messages from bob are held" in again[2]
            # When alice has compared bob's new safety number and trusts it
            code, out, err = await run_cli(
                home,
                second.ws_url,
                "--profile",
                "alice",
                "trust",
                "bob",
                "--fingerprint",
                bob.fingerprint() or "",
            )
            # Then the held messages are shown, in order, and join her history
            assert code == 0, err
            assert out.index("new phone, same bob") < out.index("please verify me")
            code, history, _ = await run_cli(
                home, second.ws_url, "--profile", "alice", "history", "bob"
            )
            lines = history.splitlines()
            assert [line.split("  ", 1)[1].rstrip(" ✓") for line in lines] == [
                "alice: hi",
                "bob: new phone, same bob",
                "bob: please verify me",
            ]
            after = await run_cli(home, second.ws_url, "--profile", "alice", "read")
            assert "held" not in after[2]


async def test_held_messages_survive_a_restart_and_open_with_the_sdk_trust(
    shared_aws: EmbeddedAws,
    clients: Clients,
    tmp_path: Path,
) -> None:
    # Given alice pinned bob's keys, and then "bob" has other keys
    async with LocalStack(aws=shared_aws) as first:
        await clients.open("bob", first.ws_url)
        alice = await clients.open("alice", first.ws_url)
        await alice.send_and_wait("bob", "hi bob")
        await clients.close_all()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    new_bob = Profile.create("bob", home=elsewhere)
    async with (
        LocalStack(aws=shared_aws) as second,
        MessengerClient(second.ws_url, new_bob, settings=FAST) as bob,
    ):
        await bob.wait_synced()
        alice = await clients.open("alice", second.ws_url)
        async with alice.events() as events:
            await bob.send_and_wait("alice", "held one")
            rejection = (await events.next_of(MessageRejected)).rejection
        assert rejection.held and "CHANGED" in rejection.reason
        # When alice's client restarts
        await clients.close_all()
        alice = await clients.open("alice", second.ws_url)
        # Then the message is still held (and not in the history)
        assert [held.sender for held in alice.held()] == ["bob"]
        assert [m.text for m in alice.history("bob")] == ["hi bob"]
        # And after trust it opens and is held no more
        await alice.trust("bob", bob.fingerprint() or "")
        assert [m.text for m in alice.history("bob")] == ["hi bob", "held one"]
        assert alice.held() == []


def test_an_older_history_gains_the_held_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE rejected (sender TEXT NOT NULL, message_id TEXT NOT NULL, sent_at INTEGER,"
        " reason TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (sender, message_id))"
    )
    old.execute("INSERT INTO rejected VALUES ('bob', 'm1', 1, 'garbage', 1)")
    old.commit()
    old.close()
    store = HistoryStore(path, "alice")
    try:
        assert store.add_rejected("bob", "m2", 2, "changed", held=("Ym9keQ", "bm9uY2U", 3))
        assert [r.held for r in store.rejected("bob")] == [False, True]
        assert [h.message_id for h in store.held("bob")] == ["m2"]
    finally:
        store.close()


async def test_garbage_is_held_as_unreadable_and_trust_opens_only_the_key_change(
    shared_aws: EmbeddedAws,
    clients: Clients,
    profile: Callable[[str], Profile],
    tmp_path: Path,
) -> None:
    # Given alice pinned bob's keys
    async with LocalStack(aws=shared_aws) as first:
        await clients.open("bob", first.ws_url)
        alice = await clients.open("alice", first.ws_url)
        await alice.send_and_wait("bob", "hi bob")
        # When bob, with those very keys, sends her bytes that open with no key
        async with alice.events() as events:
            await send_garbage(first.ws_url, profile("bob"), "alice", "garbage-0001")
            rejection = (await events.next_of(MessageRejected)).rejection
        # Then it is held (never dropped) as unreadable, with no promise about trust
        assert rejection.held_because is HoldReason.UNREADABLE
        assert [h.held_because for h in alice.held("bob")] == [HoldReason.UNREADABLE]
        assert held_notices(alice.held()) == [UNREADABLE_FROM_BOB]
        await clients.close_all()
    # And when "bob" then has other keys and writes with them
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    new_bob = Profile.create("bob", home=elsewhere)
    async with (
        LocalStack(aws=shared_aws) as second,
        MessengerClient(second.ws_url, new_bob, settings=FAST) as bob,
    ):
        await bob.wait_synced()
        alice = await clients.open("alice", second.ws_url)
        async with alice.events() as events:
            await bob.send_and_wait("alice", "new keys, same bob")
            rejection = (await events.next_of(MessageRejected)).rejection
        # Then that one is held until alice verifies bob's new safety number
        assert rejection.held_because is HoldReason.KEY_CHANGED
        assert held_notices(alice.held()) == [
            UNREADABLE_FROM_BOB,
            KEY_CHANGED_FROM_BOB + " (compare `messenger fingerprint bob` with bob, then"
            " `messenger trust bob --fingerprint NUMBER`)",
        ]
        # When she trusts the new keys
        await alice.trust("bob", bob.fingerprint() or "")
        # Then only the key change opens; the garbage stays held, as unreadable
        assert [m.text for m in alice.history("bob")] == ["hi bob", "new keys, same bob"]
        assert [(h.message_id, h.held_because) for h in alice.held()] == [
            ("garbage-0001", HoldReason.UNREADABLE)
        ]


async def test_the_cli_says_garbage_could_not_be_opened_not_that_trust_opens_it(
    stack: LocalStack,
    clients: Clients,
    profile: Callable[[str], Profile],
    home: Path,
) -> None:
    # Given alice (the CLI) pinned bob's keys, and bob sent her bytes that open with no key
    assert (await run_cli(home, stack.ws_url, "--profile", "alice", "init"))[0] == 0
    bob = await clients.open("bob", stack.ws_url)
    assert (await run_cli(home, stack.ws_url, "--profile", "alice", "send", "bob", "hi"))[0] == 0
    await send_garbage(stack.ws_url, profile("bob"), "alice", "garbage-0002")
    # When alice reads
    code, out, err = await run_cli(home, stack.ws_url, "--profile", "alice", "read")
    # Then she is told it could not be opened, and not to verify a safety number
    assert code == 0, err
    assert out == ""
    assert UNREADABLE_FROM_BOB in err
    assert "held until you verify" not in err and "messenger trust" not in err
    # And trusting bob's (unchanged) keys does not open it: she is told so again
    code, out, err = await run_cli(
        home,
        stack.ws_url,
        "--profile",
        "alice",
        "trust",
        "bob",
        "--fingerprint",
        bob.fingerprint() or "",
    )
    assert code == 0, err
    assert "now verified" not in out
    assert UNREADABLE_FROM_BOB in err
