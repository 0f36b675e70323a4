"""The SDK against the local stack: two and three clients, as the protocol has them talk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nacl.public import Box, PublicKey
from nacl.utils import random as random_bytes

from messenger_client.client import MessengerClient
from messenger_client.errors import KeyChanged, MessageTooLong, UnknownUser
from messenger_client.events import (
    EventStream,
    MessageAdded,
    MessageRejected,
    PresenceChanged,
    StatusChanged,
)
from messenger_client.keystore import Profile
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.frames import ClientFrame
from tests.client.conftest import FAST, VISIBLE, Clients, MakeClient
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

RANK = {MessageStatus.SENT: 1, MessageStatus.DELIVERED: 2, MessageStatus.SEEN: 3}


def texts(client: MessengerClient, peer: str) -> list[str]:
    return [message.text for message in client.history(peer)]


async def statuses_until(
    events: EventStream, message_id: str, final: MessageStatus
) -> list[MessageStatus]:
    """The statuses a message moves through, as events announce them, until `final`."""
    seen: list[MessageStatus] = []
    while not seen or seen[-1] != final:
        event = await events.next_of(StatusChanged, lambda e: message_id in e.message_ids)
        seen.append(event.status)
    return seen


async def acks_done(stack: LocalStack, count: int) -> None:
    """Until the server has processed `count` ack frames (clients batch them briefly)."""
    await until(lambda: len(stack.invocations_of("ack")) >= count)
    await stack.settled()


def sealed_frame(
    sender: TestUser, recipient: MessengerClient, plaintext: bytes, message_id: str
) -> dict[str, object]:
    """A sendMessage frame from a raw test user to an SDK client's profile."""
    recipient_key = PublicKey(b64url_decode(recipient.profile.identity.public_keys.box_key))
    nonce = random_bytes(24)
    body = Box(sender.box_key, recipient_key).encrypt(plaintext, nonce).ciphertext
    return {
        "action": "sendMessage",
        "messageId": message_id,
        "to": recipient.user_id,
        "body": b64url_encode(body),
        "nonce": b64url_encode(nonce),
        "sentAt": 1,
    }


async def test_a_conversation_moves_from_pending_to_seen_and_back(client: MakeClient) -> None:
    # Given alice and bob online
    alice, bob = await client("alice"), await client("bob")
    async with alice.events() as alice_events, bob.events() as bob_events:
        # When alice sends bob a message
        message = await alice.send("bob", "hello bob")
        assert message.status == MessageStatus.PENDING
        # Then bob stores it, decrypted, from alice
        received = (await bob_events.next_of(MessageAdded)).message
        assert (received.sender, received.message_id, received.text) == (
            "alice",
            message.message_id,
            "hello bob",
        )
        # When bob reads the conversation
        assert await bob.mark_seen("alice") == [message.message_id]
        # Then alice saw her message move forward (sent, delivered, seen: receipts race
        # on the server, so a late one may be skipped) and never backwards, up to seen
        moves = await statuses_until(alice_events, message.message_id, MessageStatus.SEEN)
        assert moves == sorted(moves, key=RANK.__getitem__)
        assert len(moves) == len(set(moves))
        # When bob answers
        reply = await bob.send_and_wait("alice", "hi alice")
        assert reply.status in (MessageStatus.SENT, MessageStatus.DELIVERED)
        await alice_events.next_of(MessageAdded, lambda e: not e.message.outgoing)
    # Then both histories hold the same conversation, in the same order
    assert texts(alice, "bob") == texts(bob, "alice") == ["hello bob", "hi alice"]
    assert [m.outgoing for m in alice.history("bob")] == [True, False]


async def test_three_people_each_see_only_their_own_conversations(client: MakeClient) -> None:
    # Given alice, bob and carol online
    alice, bob, carol = await client("alice"), await client("bob"), await client("carol")
    async with bob.events() as bob_events, carol.events() as carol_events:
        # When alice and carol both write to bob, and bob answers carol
        from_alice = await alice.send_and_wait("bob", "from alice")
        await carol.send_and_wait("bob", "from carol")
        await bob_events.next_of(MessageAdded, lambda e: e.message.sender == "alice")
        await bob_events.next_of(MessageAdded, lambda e: e.message.sender == "carol")
        await bob.send_and_wait("carol", "to carol")
        await carol_events.next_of(MessageAdded, lambda e: not e.message.outgoing)
        # Then each receipt went to the one who sent the message
        await until(lambda: alice.history("bob")[0].status == MessageStatus.DELIVERED)
    assert alice.history("bob")[0].message_id == from_alice.message_id
    assert texts(bob, "alice") == ["from alice"]
    assert texts(bob, "carol") == ["from carol", "to carol"]
    assert texts(carol, "bob") == ["from carol", "to carol"]
    assert alice.history("carol") == [] and carol.history("alice") == []
    assert [c.peer for c in bob.conversations()] == ["carol", "alice"]


async def test_messages_sent_while_offline_arrive_in_order_on_the_next_connect(
    client: MakeClient,
) -> None:
    # Given bob registered, then gone offline
    await (await client("bob")).close()
    alice = await client("alice")
    # When alice sends him three messages (each stored by the server)
    sent = [await alice.send_and_wait("bob", text) for text in ("one", "two", "three")]
    assert all(message.status == MessageStatus.SENT for message in sent)
    # And bob comes back
    bob = await client("bob")
    # Then his sync brought all three, in order, and alice learns they were delivered
    assert texts(bob, "alice") == ["one", "two", "three"]
    await until(lambda: {m.status for m in alice.history("bob")} == {MessageStatus.DELIVERED})
    # And nothing stays queued on the server
    assert await bob.sync() == 0


async def test_a_message_delivered_twice_is_stored_once(
    client: MakeClient,
    connect: Connect,
    stack: LocalStack,
) -> None:
    # Given bob online, and alice on a raw connection
    bob = await client("bob")
    raw_alice = TestUser("alice")
    alice_socket = await connect(raw_alice)
    frame = sealed_frame(raw_alice, bob, b'{"text":"only once"}', "dup-00000001")
    async with bob.events() as events:
        # When alice sends a message and bob stores and acks it
        await alice_socket.send(frame)
        await events.next_of(MessageAdded)
        await acks_done(stack, 1)
        # And a late resend of the same frame reaches him again (the server forgot it)
        await alice_socket.send(frame)
        await acks_done(stack, 2)
        # Then bob kept one copy and announced it once, and acked both deliveries
        assert [e for e in events.drain() if isinstance(e, MessageAdded)] == []
    assert texts(bob, "alice") == ["only once"]
    assert await bob.sync() == 0


async def test_a_connection_lost_in_the_middle_of_a_send_loses_and_duplicates_nothing(
    client: MakeClient,
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given alice online, bob offline (so no `delivered` receipt can settle the message
    # before alice's SDK gets to resend it), and alice's network about to fail right after
    # her first sendMessage frame leaves (before the ack can come back)
    bob = await client("bob")
    await bob.close()
    alice = await client("alice")
    connection = alice._connection
    send_frame = connection.send
    sends: list[object] = []

    async def send_then_fail(frame: ClientFrame | str) -> object:
        session = await send_frame(frame)
        if '"sendMessage"' in str(frame):
            sends.append(frame)
            if len(sends) == 1:
                connection.drop()
        return session

    monkeypatch.setattr(connection, "send", send_then_fail)
    # When alice sends
    message = await alice.send("bob", "through the storm")
    # Then the SDK reconnects and resends the same frame until the server acks it
    acked = await alice.wait_sent(message.message_id, timeout=10)
    assert acked.status == MessageStatus.SENT
    assert len(stack.invocations_of("$connect")) >= 3  # bob, alice twice
    # (the very same frame, byte for byte: same messageId, ciphertext, nonce, sentAt)
    assert len(sends) == 2 and sends[0] == sends[1]
    assert len(stack.invocations_of("sendMessage")) == 2
    # And when bob comes back, the server kept one copy: he gets the message exactly once
    bob = await client("bob")
    assert texts(bob, "alice") == ["through the storm"]
    await bob.sync()
    assert texts(bob, "alice") == ["through the storm"]


async def test_the_outbox_survives_a_restart_without_a_connection(client: MakeClient) -> None:
    # Given alice has met bob (his keys are pinned)
    bob = await client("bob")
    alice = await client("alice")
    await alice.peer_keys("bob")
    await alice.close()
    # When alice writes while no server can be reached, and quits
    offline = await client("alice", url="ws://127.0.0.1:9/local", wait=False)
    message = await offline.send("bob", "written offline")
    assert message.status == MessageStatus.PENDING
    await offline.close()
    # Then the next time she connects, the message goes out, and bob gets it
    async with bob.events() as events:
        alice = await client("alice")
        await alice.wait_sent(message.message_id)
        await events.next_of(MessageAdded)
    assert texts(bob, "alice") == ["written offline"]


async def test_a_text_too_long_for_one_frame_is_refused_before_anything_is_sent(
    client: MakeClient,
    stack: LocalStack,
) -> None:
    alice = await client("alice")
    await client("bob")
    with pytest.raises(MessageTooLong, match="too long"):
        await alice.send("bob", "x" * 24_000)
    assert stack.invocations_of("sendMessage") == []
    assert stack.invocations_of("getKeys") == []
    assert alice.history("bob") == []


async def test_sending_to_someone_who_does_not_exist_is_refused(client: MakeClient) -> None:
    alice = await client("alice")
    with pytest.raises(UnknownUser, match="nobody"):
        await alice.send("nobody", "hello?")
    assert alice.history("nobody") == []


async def test_a_message_that_does_not_open_is_rejected_reported_and_acked(
    client: MakeClient,
    connect: Connect,
    stack: LocalStack,
) -> None:
    # Given bob online, and alice sending garbage where a Box should be
    bob = await client("bob")
    raw_alice = TestUser("alice")
    alice_socket = await connect(raw_alice)
    async with bob.events() as events:
        await alice_socket.send(
            {
                "action": "sendMessage",
                "messageId": "garbage-0001",
                "to": "bob",
                "body": b64url_encode(b"\0" * 40),
                "nonce": b64url_encode(b"\0" * 24),
                "sentAt": 1,
            }
        )
        # Then bob reports it and stores no message
        rejected = (await events.next_of(MessageRejected)).rejection
    assert (rejected.sender, rejected.message_id) == ("alice", "garbage-0001")
    assert bob.history("alice") == []
    # And it was acked, so it does not come back with every sync
    await acks_done(stack, 1)
    assert await bob.sync() == 0
    # And a readable message from alice still gets through
    await alice_socket.send(
        sealed_frame(raw_alice, bob, json.dumps({"text": "ok"}).encode(), "fine-00000001")
    )
    await until(lambda: texts(bob, "alice") == ["ok"])


async def test_presence_subscriptions_are_renewed_after_a_reconnect(
    client: MakeClient,
    stack: LocalStack,
) -> None:
    # Given carol registered but offline (showing her presence to everyone), and alice
    # watching her
    await (await client("carol", settings=VISIBLE)).close()
    alice = await client("alice")
    async with alice.events() as events:
        [carol_now] = await alice.get_presence(["carol"], subscribe=True)
        assert not carol_now.online and carol_now.last_seen is not None
        # When alice's connection drops and the SDK reconnects
        alice.drop_connection()
        await alice.wait_synced()
        await stack.settled()
        # Then carol coming online still reaches alice
        await client("carol", settings=VISIBLE)
        change = await events.next_of(PresenceChanged, lambda e: e.presence.online)
    assert change.presence.user_id == "carol"
    assert alice.presence("carol") == change.presence


async def test_a_changed_key_is_refused_until_the_user_re_verifies_it(
    shared_aws: EmbeddedAws,
    clients: Clients,
    tmp_path: Path,
) -> None:
    # Given alice talked with bob: his keys are pinned
    async with LocalStack(aws=shared_aws) as first:
        alice = await clients.open("alice", first.ws_url)
        await clients.open("bob", first.ws_url)
        await alice.send_and_wait("bob", "hi bob")
        await clients.close_all()
    # And now a server gives other keys for "bob" (someone else registered the name)
    other_home = tmp_path / "elsewhere"
    other_home.mkdir(mode=0o700)
    impostor_profile = Profile.create("bob", home=other_home)
    async with LocalStack(aws=shared_aws) as second:
        impostor = MessengerClient(second.ws_url, impostor_profile, settings=FAST)
        async with impostor:
            await impostor.wait_synced()
            alice = await clients.open("alice", second.ws_url)
            # When alice writes to bob, Then it is refused loudly and nothing is sent
            with pytest.raises(KeyChanged, match="CHANGED") as refused:
                await alice.send("bob", "my secret")
            assert refused.value.offered.fingerprint() == impostor.fingerprint()
            assert second.invocations_of("sendMessage") == []
            # When "bob" writes to alice, Then she rejects it and says why
            async with alice.events() as events:
                await impostor.send_and_wait("alice", "it's me, bob")
                rejection = (await events.next_of(MessageRejected)).rejection
            assert "CHANGED" in rejection.reason
            assert texts(alice, "bob") == ["hi bob"]
            # When alice has compared the new safety number and trusts it
            await alice.trust("bob", impostor.fingerprint() or "")
            # Then messages flow again
            await alice.send_and_wait("bob", "verified")
            assert alice.fingerprint("bob") == impostor.fingerprint()


async def test_trusting_a_number_that_does_not_match_changes_nothing(client: MakeClient) -> None:
    alice, bob = await client("alice"), await client("bob")
    pinned = await alice.peer_keys("bob")
    with pytest.raises(ValueError, match="does not match"):
        await alice.trust("bob", "00000 00000 00000 00000 00000 00000")
    assert alice.fingerprint("bob") == pinned.fingerprint() == bob.fingerprint()


async def test_by_default_only_the_people_we_wrote_to_see_our_presence(
    client: MakeClient, stack: LocalStack
) -> None:
    # Given alice, who wrote to bob, and carol, whom she never wrote to
    alice, bob, carol = await client("alice"), await client("bob"), await client("carol")
    await alice.send_and_wait("bob", "hi bob")
    await stack.settled()
    # When both ask about alice, Then bob sees her online, and to carol she looks like a
    # user who does not exist
    [seen_by_bob] = await bob.get_presence(["alice"])
    [seen_by_carol] = await carol.get_presence(["alice"])
    assert seen_by_bob.online is True
    assert (seen_by_carol.online, seen_by_carol.last_seen) == (False, None)
    assert alice.contacts() == ["bob"]
    # And once alice writes to carol too, carol sees her as well
    await alice.send_and_wait("carol", "hi carol")
    await stack.settled()
    assert (await carol.get_presence(["alice"]))[0].online is True
    assert sorted(alice.contacts()) == ["bob", "carol"]
