"""The SDK among cells (docs/protocol.md §6) and through a failover (§7), on real stacks.

The directory is served over real HTTP on loopback; a cell that is not the user's home
is a second LocalStack in this process whose functions are told they are another cell,
so its authorizer refuses the user (403) as on AWS.
A failover is a stack replaced by another with another epoch on the same port: what the
first held is lost, as the writes a failover did not replicate are.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from nacl.signing import SigningKey

from messenger_client.client import MessengerClient
from messenger_client.connection import ConnectionState
from messenger_client.errors import HandshakeRefused
from messenger_client.events import EpochChanged, MessageAdded, PresenceChanged
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.cells import DIRECTORY_NAME, Directory, ShardMap
from messenger_protocol.encoding import b64url_encode
from tests.client.conftest import Clients
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

CELLS = ShardMap.even(["c0", "c1"], 2)


# The test deployment's directory key: its public half is served at /directory.key.
DIRECTORY_SIGNING_KEY = SigningKey(bytes(range(1, 33)))
DIRECTORY_PUBLIC_KEY = b64url_encode(bytes(DIRECTORY_SIGNING_KEY.verify_key))


class DirectoryServer:
    """directory.json on loopback: each GET answers the next of `versions` (the last one
    stays), as a deployment publishes a new version on every change; /directory.key its
    public key, and /directory/N.json any of `versions` by its number."""

    def __init__(self, *versions: dict[str, Any]) -> None:
        self.versions = list(versions)
        self.gets = 0
        self.copy_gets = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> DirectoryServer:
        app = web.Application()
        app.router.add_get("/directory.json", self._serve)
        app.router.add_get("/directory.key", self._serve_key)
        app.router.add_get("/directory/{version}.json", self._serve_copy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/directory.json"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, _request: web.Request) -> web.Response:
        document = self.versions[min(self.gets, len(self.versions) - 1)]
        self.gets += 1
        return web.json_response(document)

    async def _serve_key(self, _request: web.Request) -> web.Response:
        return web.Response(text=DIRECTORY_PUBLIC_KEY + "\n")

    async def _serve_copy(self, request: web.Request) -> web.Response:
        self.copy_gets += 1
        wanted = request.match_info["version"]
        for document in self.versions:
            if str(document["version"]) == wanted:
                return web.json_response(document)
        return web.Response(status=404)


def directory(version: int, home_url: str, other_url: str, user: str) -> dict[str, Any]:
    """A two-cell directory in which `user`'s home cell is at `home_url`."""
    home = CELLS.home_of(user)
    urls = {cell: home_url if cell == home else other_url for cell in CELLS.cells()}
    epochs = dict.fromkeys(urls, "local#0")
    return Directory(version, urls, CELLS, epochs).sign(DIRECTORY_SIGNING_KEY).to_wire()


@asynccontextmanager
async def foreign_cell(aws: EmbeddedAws, user: str) -> AsyncIterator[str]:
    """A stack, beside the test's own in this process, whose functions are told they are
    the cell that is NOT `user`'s home: its URL."""
    home = CELLS.home_of(user)
    (foreign,) = [cell for cell in CELLS.cells() if cell != home]
    # It reads its shard map from a signed directory in the directory's bucket (its peers'
    # records would be there too; it never calls one).
    bucket = f"messenger-directory-{foreign}-{uuid.uuid4().hex[:8]}"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    signed = directory(1, "ws://127.0.0.1:1/home", "ws://127.0.0.1:1/foreign", user)
    s3.put_object(Bucket=bucket, Key=DIRECTORY_NAME, Body=json.dumps(signed).encode())
    environment = {
        "CELL_ID": foreign,
        "MESH_BUCKET": bucket,
        "MESH_BUCKET_REGION": aws.region,
        "MESH_BUCKET_OWNER": "123456789012",
        "DIRECTORY_PUBLIC_KEY": DIRECTORY_PUBLIC_KEY,
    }
    try:
        async with LocalStack(aws=aws, environment=environment) as elsewhere:
            yield elsewhere.ws_url
    finally:
        aws.delete_bucket(bucket)


def frame_of(client: MessengerClient, message_id: str) -> str | None:
    """The frame our history keeps for one of our messages (None once delivered)."""
    with sqlite3.connect(client.profile.history_path) as db:
        row = db.execute(
            "SELECT frame FROM messages WHERE sender = ? AND message_id = ?",
            (client.user_id, message_id),
        ).fetchone()
    return None if row is None else row[0]


# --- the directory ---------------------------------------------------------------------


@pytest.mark.slow
async def test_a_refused_handshake_fetches_the_directory_again_and_connects_home(
    stack: LocalStack, clients: Clients
) -> None:
    # Given a directory whose first version sends alice to a cell that is not her home,
    # and whose next version sends her home
    async with (
        foreign_cell(stack.aws, "alice") as elsewhere,
        DirectoryServer(
            directory(1, elsewhere, elsewhere, "alice"),
            directory(2, stack.ws_url, elsewhere, "alice"),
        ) as served,
    ):
        # When alice starts with the directory
        alice = await clients.open("alice", None, directory_url=served.url)

        # Then the cell refused her, she read the directory again, and is at home
        assert served.gets == 2
        assert alice.status.state == ConnectionState.ONLINE
        assert [i.user for i in stack.invocations_of("$connect")] == ["alice"]


@pytest.mark.slow
async def test_a_directory_that_keeps_sending_us_where_we_are_refused_is_final(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given a directory that sends alice, in every version, to a cell that refuses her
    async with (
        foreign_cell(shared_aws, "alice") as elsewhere,
        DirectoryServer(directory(5, elsewhere, elsewhere, "alice")) as served,
    ):
        # When she starts with it
        alice = await clients.open("alice", None, directory_url=served.url, wait=False)

        # Then she is refused for good, after one more look at the directory: no loop
        with pytest.raises(HandshakeRefused):
            await alice.wait_online(20)
        assert alice.status.state == ConnectionState.REFUSED
        await asyncio.sleep(1.0)
        assert served.gets == 2


async def test_a_restart_connects_home_from_the_remembered_directory(
    stack: LocalStack, clients: Clients
) -> None:
    # Given alice, who connected once through the directory
    async with DirectoryServer(directory(1, stack.ws_url, stack.ws_url, "alice")) as served:
        alice = await clients.open("alice", None, directory_url=served.url)
        await alice.close()
        url = served.url

    # When she starts again with the directory out of reach
    again = await clients.open("alice", None, directory_url=url)

    # Then she is at home at once, from what her profile remembers
    assert again.status.state == ConnectionState.ONLINE
    assert len(stack.invocations_of("$connect")) == 2


async def test_when_the_directory_moves_the_home_cell_undelivered_messages_go_again(
    stack: LocalStack, clients: Clients
) -> None:
    # Given alice at home through the directory, and a message to bob (offline) that
    # the server stored but bob never got
    await clients.open("bob", stack.ws_url)
    await clients.close_all()
    moved_url = stack.ws_url.replace("127.0.0.1", "localhost")
    async with DirectoryServer(directory(1, stack.ws_url, stack.ws_url, "alice")) as served:
        alice = await clients.open("alice", None, directory_url=served.url)
        sent = await alice.send_and_wait("bob", "are you there?")
        frame = frame_of(alice, sent.message_id)
        assert frame is not None
        await alice.close()

    # When she starts again and reads a directory that moved her home cell (a failover;
    # a client reads the directory only on an event, docs/protocol.md §6: here a start
    # with none for this URL)
    async with DirectoryServer(directory(2, moved_url, stack.ws_url, "alice")) as served:
        sends_before = len(stack.invocations_of("sendMessage"))
        alice = await clients.open("alice", None, directory_url=served.url)

        # Then the message goes again, the same frame, and bob gets it once
        await until(lambda: len(stack.invocations_of("sendMessage")) == sends_before + 1)
        bob = await clients.open("bob", stack.ws_url)
        await until(lambda: alice.history("bob")[0].status == MessageStatus.DELIVERED, 10)
        assert [m.text for m in bob.history("alice")] == ["are you there?"]
        assert frame_of(alice, sent.message_id) is None  # delivered: no longer kept


# --- failover: a new epoch --------------------------------------------------------------


async def test_after_a_new_epoch_undelivered_messages_go_again_and_arrive_once(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given alice and bob on a cell of epoch "local-a": alice's first message was
    # delivered; her second was stored and bob read it, but its `delivered` receipt never
    # reached her (she was offline)
    first = LocalStack(aws=shared_aws, environment={"CELL_EPOCH": "local-a"})
    await first.start()
    port = first.port
    try:
        alice = await clients.open("alice", first.ws_url)
        await clients.open("bob", first.ws_url)
        await alice.send_and_wait("bob", "one")
        await until(lambda: alice.history("bob")[0].status == MessageStatus.DELIVERED, 10)
        await clients.close_all()
        alice = await clients.open("alice", first.ws_url)
        kept = await alice.send_and_wait("bob", "two")
        assert alice.epoch == "local-a#0"
        frame = frame_of(alice, kept.message_id)
        await clients.close_all()
        bob = await clients.open("bob", first.ws_url)
        await until(lambda: [m.text for m in bob.history("alice")] == ["one", "two"], 10)
        await first.settled()
        await clients.close_all()
    finally:
        await first.stop()

    # When the cell fails over to a standby of another epoch that lost all of it
    second = LocalStack(aws=shared_aws, port=port, environment={"CELL_EPOCH": "local-b"})
    await second.start()
    try:
        bob = await clients.open("bob", second.ws_url)
        alice = await clients.open("alice", second.ws_url, wait=False)
        async with alice.events() as events:
            changed = await events.next_of(EpochChanged, timeout=20)

        # Then alice, unknown to the standby, was registered again by her connect (with
        # the keys bob pinned), saw the new epoch, and sent the undelivered message again,
        # the frame she kept, and not the delivered one
        assert (changed.previous, changed.epoch) == ("local-a#0", "local-b#0")
        await until(lambda: alice.history("bob")[1].status == MessageStatus.DELIVERED, 20)
        assert frame is not None and frame_of(alice, kept.message_id) is None
        resent = second.invocations_of("sendMessage", user="alice")
        assert len(resent) == 1
        assert await bob.peer_keys("alice") == alice.profile.identity.public_keys

        # And bob, who had it already, dropped the copy (and acked it): each message once
        assert [m.text for m in bob.history("alice")] == ["one", "two"]
        assert [i.outcome for i in second.invocations_of("ack")] == ["ok"]
    finally:
        await clients.close_all()
        await second.stop()


# --- presence: contacts only, told before the message ------------------------------------


async def test_a_peer_sees_our_presence_once_we_wrote_to_them_and_not_before(
    stack: LocalStack, clients: Clients
) -> None:
    # Given carol and alice (both showing their presence to their contacts only), carol
    # watching alice
    alice = await clients.open("alice", stack.ws_url)
    carol = await clients.open("carol", stack.ws_url)
    [hidden] = await carol.get_presence(["alice"], subscribe=True)
    assert (hidden.online, hidden.last_seen) == (False, None)

    # When carol, a stranger to alice, writes to her
    async with alice.events() as events:
        await carol.send_and_wait("alice", "hi alice, it's carol")
        await events.next_of(MessageAdded, lambda e: not e.message.outgoing)

    # Then carol still does not see alice: writing to someone does not make them ours
    [still_hidden] = await carol.get_presence(["alice"])
    assert (still_hidden.online, still_hidden.last_seen) == (False, None)
    assert alice.contacts() == []

    # When alice answers
    before = len(stack.invocations)
    async with carol.events() as events:
        await alice.send_and_wait("carol", "hi carol")
        await events.next_of(MessageAdded, lambda e: not e.message.outgoing)

        # Then carol, who could not see her, asks again and sees her online
        seen = await events.next_of(PresenceChanged, lambda e: e.presence.user_id == "alice")
        assert seen.presence.online

    # And alice's visibility reached the server before her message did
    told = ("setPresenceVisibility", "sendMessage")
    routes = [i.route for i in stack.invocations[before:] if i.user == "alice" and i.route in told]
    assert routes == list(told)
    assert alice.contacts() == ["carol"]


async def test_a_dv_naming_a_newer_directory_version_reads_its_numbered_copy(
    tmp_path: Any,
) -> None:
    from messenger_client.directory import HomeCell
    from messenger_client.store import HistoryStore

    # Given a client's home cell read from directory version 1, and version 2 published
    v1 = directory(1, "ws://127.0.0.1:1/c0", "ws://127.0.0.1:1/c1", "alice")
    v2 = directory(2, "ws://127.0.0.1:1/c0", "ws://127.0.0.1:2/c1", "alice")
    store = HistoryStore(tmp_path / "history.sqlite3", me="alice")
    moved: list[frozenset[str]] = []
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    async with DirectoryServer(v1, v2) as server:
        home = HomeCell(
            server.url,
            "alice",
            store,
            on_home_moved=lambda: None,
            on_cells_moved=lambda _directory, cells: moved.append(cells),
            sleep=fake_sleep,
        )
        await home.url(after_failure=False)
        assert home.directory is not None and home.directory.version == 1
        reads = server.gets
        # When a frame's dv names the version it holds, nothing is read
        await home.learn_version(1)
        assert (server.gets, server.copy_gets, waited) == (reads, 0, [])
        # When a dv names version 2, its numbered copy is read after a random delay of
        # at most 60 s (the stable URL is not), and the moved cell is seen
        await home.learn_version(2)
        assert (server.gets, server.copy_gets) == (reads, 1)
        assert len(waited) == 1 and 0 <= waited[0] <= 60
        assert home.directory.version == 2
        other = next(cell for cell in CELLS.cells() if cell != CELLS.home_of("alice"))
        assert moved == [frozenset({other})]
    store.close()
