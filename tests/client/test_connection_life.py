"""API Gateway's limits, shortened by the local stack: idle timeout and maximum duration."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path

import pytest

from messenger.contract import Env
from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionState
from messenger_client.crypto import signed_url
from messenger_client.errors import HandshakeRefused, NotConnected
from messenger_client.events import ConnectionChanged, MessageAdded, PresenceChanged
from messenger_client.keystore import Profile
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.cells import FENCED_STAGE_VARIABLE
from messenger_protocol.limits import MAX_REFUSED_FRAMES
from messenger_protocol.names import PresenceVisibility
from tests.client.conftest import FAST, Clients
from tests.support.harness import throttle_dynamodb
from tests.support.waiting import until
from tests.support.ws_client import open_socket

pytestmark = pytest.mark.e2e
EVERYONE = PresenceVisibility.EVERYONE


def fast(**policy: float) -> ClientSettings:
    return dataclasses.replace(FAST, connection=dataclasses.replace(FAST.connection, **policy))


def connects_of(stack: LocalStack, user: str) -> int:
    return len(stack.invocations_of("$connect", user=user))


async def test_pings_keep_a_quiet_connection_open_past_the_idle_timeout(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given a gateway that closes connections idle for 1 s, and a client pinging every 0.3 s
    async with LocalStack(aws=shared_aws, idle_timeout=1.0) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=fast(ping_interval=0.3))
        async with alice.events() as events:
            # When nothing else happens for well over the idle timeout
            await asyncio.sleep(2.5)
            # Then the first connection is still the only one, and it never went offline
            assert connects_of(stack, "alice") == 1
            assert not [e for e in events.drain() if isinstance(e, ConnectionChanged)]
        assert len(stack.invocations_of("ping")) >= 4
        await clients.close_all()


async def test_a_connection_closed_by_the_gateway_comes_back_by_itself(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given a client that does not ping, behind a gateway with a 1 s idle timeout
    async with LocalStack(aws=shared_aws, idle_timeout=1.0) as stack:
        quiet = fast(ping_interval=60.0)
        bob = await clients.open("bob", stack.ws_url, settings=quiet)
        alice = await clients.open("alice", stack.ws_url, settings=fast(ping_interval=0.3))
        async with bob.events() as events:
            # When the gateway closes bob's idle connection
            await events.next_of(
                ConnectionChanged, lambda e: e.status.state == ConnectionState.OFFLINE
            )
            # Then bob reconnects and syncs on his own, and messages reach him
            await bob.wait_synced()
            await alice.send_and_wait("bob", "still there?")
            await events.next_of(MessageAdded)
        assert connects_of(stack, "bob") >= 2
        # And who may see his presence was told once: the server keeps it across connections
        assert len(stack.invocations_of("setPresenceVisibility", user="bob")) == 1
        await clients.close_all()


async def test_a_connection_is_replaced_before_the_maximum_duration_without_an_offline_blip(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given a gateway that ends every connection after 3 s, and alice's client told to
    # move to a new connection after 1 s; carol watches alice's presence
    async with LocalStack(aws=shared_aws, max_duration=3.0) as stack:
        visible = dataclasses.replace(fast(max_age=1.0), presence_visibility=EVERYONE)
        alice = await clients.open("alice", stack.ws_url, settings=visible)
        carol = await clients.open("carol", stack.ws_url)
        async with carol.events() as carol_events, alice.events() as alice_events:
            await carol.get_presence(["alice"], subscribe=True)
            # When more than the maximum duration passes, with a message sent meanwhile
            await asyncio.sleep(1.5)
            await carol.send_and_wait("alice", "across the switch")
            await asyncio.sleep(2.0)
            # Then alice opened new connections before the old ones were cut
            assert connects_of(stack, "alice") >= 3
            # And she was never offline: not for herself, and not for carol
            offline = [e for e in alice_events.drain() if isinstance(e, ConnectionChanged)]
            assert offline == []
            assert [
                e
                for e in carol_events.drain()
                if isinstance(e, PresenceChanged) and not e.presence.online
            ] == []
        assert [m.text for m in alice.history("carol")] == ["across the switch"]
        await clients.close_all()


async def test_a_refused_handshake_is_reported_at_once(
    shared_aws: EmbeddedAws,
    clients: Clients,
    tmp_path: Path,
) -> None:
    # Given "alice" registered by her own keys
    async with LocalStack(aws=shared_aws) as stack:
        await clients.open("alice", stack.ws_url)
        # When someone else's keys claim the same user id
        other_home = tmp_path / "other"
        other_home.mkdir(mode=0o700)
        impostor = MessengerClient(
            stack.ws_url, Profile.create("alice", home=other_home), settings=FAST
        )
        async with impostor:
            # Then the server refuses the handshake (403), and the SDK says so at once
            with pytest.raises(HandshakeRefused, match="HTTP 403") as refused:
                await impostor.wait_online(timeout=5.0)
            assert refused.value.status_code == 403
            # And locally it says why in words (AWS's body is a bare "Forbidden")
            assert refused.value.reason == "userId is registered with other keys"
            assert "registered with other keys" in str(refused.value)
            # And stops there: a refusal is final (a 5xx is not: the test below)
            await asyncio.sleep(1.0)  # many backoff delays of these settings
            assert impostor.status.state == ConnectionState.REFUSED
            assert [i.status for i in stack.invocations_of("authorizer")][1:] == [403]
        await clients.close_all()


async def test_a_connection_replaced_by_a_fifth_of_its_device_stays_down_and_says_why(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given alice's client online (it has bob's keys), and three more sockets of her device
    async with LocalStack(aws=shared_aws) as stack:
        await clients.open("bob", stack.ws_url)
        alice = await clients.open("alice", stack.ws_url)
        await alice.send_and_wait("bob", "before")
        identity = alice.profile.identity
        others = [await open_socket(signed_url(stack.ws_url, identity, time.time()))]
        others += [await open_socket(signed_url(stack.ws_url, identity, time.time()))]
        others += [await open_socket(signed_url(stack.ws_url, identity, time.time()))]
        async with alice.events() as events:
            # When the device opens a fifth connection (docs/protocol.md §1: at most 4)
            others.append(await open_socket(signed_url(stack.ws_url, identity, time.time())))
            # Then the client, the oldest, is closed REPLACED and says so
            replaced = await events.next_of(
                ConnectionChanged, lambda e: e.status.state == ConnectionState.REPLACED
            )
            assert replaced.status.error is not None and "REPLACED" in replaced.status.error
            # And it does not reconnect: that would replace another of the device's in turn
            await asyncio.sleep(1.0)  # many backoff delays of these settings
            assert alice.status.state == ConnectionState.REPLACED
            assert connects_of(stack, "alice") == 5
            with pytest.raises(NotConnected, match="REPLACED"):
                await alice.wait_online(timeout=1.0)
            # And what it sends meanwhile waits in the outbox
            waiting = await alice.send("bob", "after")
            await asyncio.sleep(0.5)
            assert [m.text for m in alice.history("bob")] == ["before", "after"]
            assert alice.history("bob")[-1].status == MessageStatus.PENDING
        # When the other sockets go and the app starts the client again
        for socket in others:
            await socket.close()
        alice.start()
        # Then it connects and the waiting message goes out
        await alice.wait_online(timeout=10.0)
        await alice.wait_sent(waiting.message_id, timeout=10.0)
        await clients.close_all()


async def test_no_server_means_not_connected_within_the_timeout(clients: Clients) -> None:
    alice = await clients.open("alice", "ws://127.0.0.1:9/local", wait=False)
    with pytest.raises(NotConnected, match=re.escape("cannot connect to ws://127.0.0.1:9/local")):
        await alice.wait_online(timeout=0.5)
    assert alice.status.state in (ConnectionState.OFFLINE, ConnectionState.CONNECTING)


async def test_messages_refused_for_the_rate_limit_are_resent_in_order(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given a server that lets a sender burst 2 messages, then 1 a second (some are refused
    # however slow the machine)
    limits = {Env.RATE_LIMIT_BURST.value: "2", Env.RATE_LIMIT_PER_MINUTE.value: "60"}
    async with LocalStack(aws=shared_aws, environment=limits) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=fast())
        bob = await clients.open("bob", stack.ws_url)
        # When alice writes six messages in a row
        written = [await alice.send("bob", f"message {n}") for n in range(6)]
        # Then some were refused with RATE_LIMITED, resent later, and all were stored
        for message in written:
            await alice.wait_sent(message.message_id, timeout=20)
        assert any(i.outcome == "error RATE_LIMITED" for i in stack.invocations_of("sendMessage"))
        # And bob has each once, in the order alice wrote them
        await until(lambda: len(bob.history("alice")) == 6, timeout=10)
        assert [m.text for m in bob.history("alice")] == [f"message {n}" for n in range(6)]
        await clients.close_all()


async def test_a_handshake_the_server_fails_is_retried_until_it_connects(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given alice registered, and the table her authorizer reads throttled for a while
    # (issue 12, 4: it used to answer 403 Deny, which the SDK takes as final)
    async with LocalStack(aws=shared_aws) as stack:
        await (await clients.open("alice", stack.ws_url)).close()
        await stack.settled()
        # (5 failures: the authorizer's GetItem and botocore's four retries)
        failures = throttle_dynamodb(stack.clients.dynamodb, "GetItem", times=5)
        # When her client connects again (the throttled client retries at once:
        # throttle_dynamodb), waiting long for a handshake, so that no second one shares
        # the failures
        settings = fast(open_timeout=20.0)
        alice = await clients.open("alice", stack.ws_url, settings=settings, wait=False)
        # Then the first handshake fails with 500, not 403, and the SDK retries until one opens
        await alice.wait_online(timeout=30)
        assert len(failures) == 5
        handshakes = [i.status for i in stack.invocations_of("authorizer")][1:]
        assert handshakes == [500, 200]
        await clients.close_all()


async def test_a_connection_closed_for_too_many_refused_frames_pauses_before_reconnecting(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given alice's client online, which pauses 2 s after a close for refused frames
    async with LocalStack(aws=shared_aws) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=fast(refused_close_pause=2.0))
        async with alice.events() as events:
            # When something on her side keeps sending frames the server refuses (more than
            # MAX_REFUSED_FRAMES a minute, however slow this machine answers them)
            for _ in range(4 * MAX_REFUSED_FRAMES):
                try:
                    await alice._connection.send("not json")
                except NotConnected:
                    break
                if alice.status.state != ConnectionState.ONLINE:
                    break
            # Then the server closes the connection saying why, and the client says it
            # goes offline for at least the pause (not a backoff of these settings)
            offline = await events.next_of(
                ConnectionChanged, lambda e: e.status.state == ConnectionState.OFFLINE, timeout=60
            )
            closed_at = time.monotonic()
            assert offline.status.error is not None and "TOO_MANY_REFUSED" in offline.status.error
            assert offline.status.retry_in is not None and offline.status.retry_in >= 2.0
            # And it comes back by itself, once the pause is over
            await alice.wait_online(timeout=10.0)
            assert time.monotonic() - closed_at >= 1.9
            assert connects_of(stack, "alice") == 2
        await clients.close_all()


async def test_moved_in_answer_to_a_ping_without_a_close_makes_the_client_reconnect(
    shared_aws: EmbeddedAws,
    clients: Clients,
) -> None:
    # Given alice's client online, pinging every 0.3 s
    async with LocalStack(aws=shared_aws) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=fast(ping_interval=0.3))
        assert connects_of(stack, "alice") == 1
        # When her stage is fenced as a switch leaves a demoted side's: API Gateway answers
        # her pings `error` MOVED from the stage, and cannot close the connection
        stage = stack.cell("c0").gateway.stage_variables
        stage[FENCED_STAGE_VARIABLE] = "1"
        # Then her client closes it itself and connects again (§7: here the same stage,
        # which takes handshakes; a demoted side refuses them, and the directory says where)
        await until(lambda: connects_of(stack, "alice") >= 2, timeout=10)
        stage[FENCED_STAGE_VARIABLE] = "0"
        await alice.wait_online(timeout=10.0)
        await clients.close_all()
