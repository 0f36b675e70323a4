"""`MessengerClient`: the SDK an app uses. The client is the source of truth.

    profile = Profile.load("alice")
    async with MessengerClient("ws://127.0.0.1:8080/local", profile) as client:
        async with client.events() as events:
            message = await client.send("bob", "hello")       # pending, in the outbox
            await client.wait_sent(message.message_id)        # the server stored it
            async for event in events: ...                    # messages, receipts, presence

What it guarantees, following PROTOCOL.md:

- **Sending**: each text is encrypted once (NaCl Box, fresh nonce, ULID messageId,
  strictly increasing sentAt) and its frame kept in the local outbox; the outbox sends
  one message at a time, in order, and resends the *same frame* with backoff until the
  server's `ack`, across reconnects and restarts. Texts too long for one frame are
  refused before anything is sent.
- **Receiving**: every `message` is deduplicated by `(from, messageId)`, decrypted with
  the sender's pinned key (which verifies the sender), stored, and only then acked.
  A message that does not open is recorded as rejected (no text) and acked as well:
  keeping it queued would not make it readable, and would replay it on every sync.
- **Keys**: a peer's keys are fetched with `getKeys` and pinned on first use; a
  different key later raises `KeyChanged` (sending) or rejects the message (receiving)
  until the user re-verifies the safety number and calls `trust`.
- **Connection**: `sync` after every (re)connect, presence subscriptions restored,
  pings and reconnects handled by `messenger_client.connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ulid import ULID

from messenger_client import crypto
from messenger_client.acks import AckBatcher
from messenger_client.connection import (
    Connection,
    ConnectionPolicy,
    ConnectionState,
    ConnectionStatus,
    Session,
)
from messenger_client.errors import (
    FingerprintMismatch,
    KeyChanged,
    NotConnected,
    RequestFailed,
    UnknownUser,
    UnreadableMessage,
)
from messenger_client.events import (
    ConnectionChanged,
    Event,
    EventStream,
    MessageAdded,
    MessageRejected,
    Presence,
    PresenceChanged,
    ServerError,
    StatusChanged,
    Synced,
)
from messenger_client.keystore import PeerKeys, Profile, normalize_fingerprint
from messenger_client.outbox import Outbox
from messenger_client.replies import Replies
from messenger_client.store import (
    Conversation,
    HistoryStore,
    MessageStatus,
    Rejection,
    StoredMessage,
)
from messenger_protocol.encoding import is_message_id, is_user_id
from messenger_protocol.limits import MAX_IDS_PER_FRAME

log = logging.getLogger(__name__)

_RECEIPT_STATUSES = {"delivered": MessageStatus.DELIVERED, "seen": MessageStatus.SEEN}


@dataclass(frozen=True)
class ClientSettings:
    """Timings (seconds). The defaults suit a real network; tests shorten them."""

    connection: ConnectionPolicy = field(default_factory=ConnectionPolicy)
    request_timeout: float = 10.0
    # A message not acked within this long is resent (the same frame), then backing off.
    resend_base: float = 3.0
    resend_cap: float = 60.0
    # Acks of items that arrive together (a sync) go out in one frame.
    ack_delay: float = 0.05


class MessengerClient:
    """One profile's connection to one server, with its local history."""

    def __init__(
        self, server_url: str, profile: Profile, *, settings: ClientSettings | None = None
    ) -> None:
        self.server_url = server_url
        self.profile = profile
        self.settings = settings or ClientSettings()
        self.store = HistoryStore(profile.history_path, profile.user_id)
        self._connection = Connection(
            server_url,
            lambda: crypto.signed_url(server_url, profile.identity, time.time()),
            on_frame=self._on_frame,
            on_open=self._on_open,
            on_status=self._on_status,
            policy=self.settings.connection,
        )
        self._streams: list[EventStream] = []
        self._outbox = Outbox(
            self.store,
            self._connection,
            resend_base=self.settings.resend_base,
            resend_cap=self.settings.resend_cap,
            publish=self._publish,
        )
        self._replies = Replies(self._connection, self.settings.request_timeout)
        self._acks = AckBatcher(self._connection, self.settings.ack_delay)
        self._items: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._synced = asyncio.Event()
        self._verified: set[str] = set()  # peers whose keys we checked on this session
        self._subscriptions: dict[str, None] = {}
        self._presence: dict[str, Presence] = {}
        self._last_sent_at = self.store.last_sent_at()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # --- life ------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.profile.user_id

    @property
    def status(self) -> ConnectionStatus:
        return self._connection.status

    async def __aenter__(self) -> MessengerClient:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting (in the background), the outbox and the receiver."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._outbox.run()), loop.create_task(self._receive())]
        self._connection.start()

    async def close(self) -> None:
        """Send the acks and seen marks not sent yet, then disconnect and close the history."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(NotConnected):
            await self._report_seen()
        await self._acks.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._connection.stop()
        self._replies.fail_all(NotConnected("the client closed"))
        self.store.close()
        for stream in list(self._streams):
            stream.publish(None)

    async def wait_online(self, timeout: float = 10.0) -> None:
        """Until a connection is open: HandshakeRefused, or NotConnected after `timeout`."""
        await self._connection.wait_open(timeout)

    async def wait_synced(self, timeout: float = 10.0) -> None:
        """Until the sync of the current connection is done: every queued item stored."""
        await self.wait_online(timeout)
        await asyncio.wait_for(self._synced.wait(), timeout)

    def drop_connection(self) -> None:
        """Abort the socket as a network failure would (the client reconnects by itself)."""
        self._connection.drop()

    def events(self) -> EventStream:
        """A new stream of every event from now on (use `async with` to close it)."""
        stream = EventStream(self._streams.remove)
        self._streams.append(stream)
        return stream

    # --- sending ---------------------------------------------------------------------

    async def send(self, peer: str, text: str) -> StoredMessage:
        """Encrypt `text` for `peer` and put it in the outbox; the message, still pending.

        Raises MessageTooLong (nothing sent), UnknownUser, KeyChanged, or NotConnected
        when the peer's keys are unknown and no connection opens to fetch them.
        """
        crypto.encode_plaintext(text)  # too long: refused before anything else happens
        _check_user_id(peer)
        keys = await self._keys_for_sending(peer)
        message_id = str(ULID())
        sent_at = self._next_sent_at()
        frame = crypto.send_message_frame(self.profile.identity, keys, message_id, text, sent_at)
        message = self.store.add_outgoing(peer, message_id, text, sent_at, frame)
        self._publish(MessageAdded(message))
        self._outbox.wake()
        return message

    async def wait_sent(self, message_id: str, timeout: float = 30.0) -> StoredMessage:
        """Until the server stored our message (sent, or further); SendRefused or
        UnknownUser if it refused it for good; TimeoutError if neither came in time."""
        return await self._outbox.wait_sent(message_id, timeout)

    async def send_and_wait(self, peer: str, text: str, timeout: float = 30.0) -> StoredMessage:
        """`send`, then `wait_sent`: the message once the server has stored it."""
        message = await self.send(peer, text)
        return await self.wait_sent(message.message_id, timeout)

    def _next_sent_at(self) -> int:
        # Strictly increasing, so that our own messages keep their order on every
        # device even when two are sent within the same millisecond.
        self._last_sent_at = max(int(time.time() * 1000), self._last_sent_at + 1)
        return self._last_sent_at

    # --- keys ------------------------------------------------------------------------

    async def peer_keys(self, peer: str) -> PeerKeys:
        """The peer's keys from the server, pinned on first use; KeyChanged if they differ."""
        _check_user_id(peer)
        pinned = self.profile.pins.check_or_pin(await self._server_keys(peer))
        self._verified.add(peer)
        return pinned

    async def _server_keys(self, peer: str) -> PeerKeys:
        """What the server holds for `peer` now (getKeys): not yet compared with the pin."""
        try:
            answer = await self._replies.request(
                {"action": "getKeys", "userId": peer},
                lambda frame: frame.get("type") == "keys" and frame.get("userId") == peer,
            )
        except RequestFailed as failed:
            if failed.code == "UNKNOWN_USER":
                raise UnknownUser(peer) from None
            raise
        try:
            return PeerKeys(peer, answer["signKey"], answer["boxKey"])
        except (KeyError, TypeError, ValueError):
            raise RequestFailed("BAD_KEYS", f"the server sent malformed keys for {peer}") from None

    async def _keys_for_sending(self, peer: str) -> PeerKeys:
        pinned = self.profile.pins.get(peer)
        if pinned is not None and (peer in self._verified or self._connection.session is None):
            # Offline, the pinned key is safe to encrypt to: only its holder can read.
            return pinned
        if pinned is None:
            await self.wait_online(self.settings.request_timeout)
        try:
            return await self.peer_keys(peer)
        except NotConnected:
            if pinned is None:
                raise
            return pinned

    async def trust(self, peer: str, fingerprint: str) -> PeerKeys:
        """Pin the peer's current keys after the user compared their safety number.

        `fingerprint` is the number the peer read out (from `fingerprint()` on their
        side); it must match the keys the server gives now, or nothing changes.
        """
        _check_user_id(peer)
        offered = await self._server_keys(peer)
        if normalize_fingerprint(fingerprint) != offered.fingerprint():
            raise FingerprintMismatch(peer, offered.fingerprint())
        self.profile.pins.trust(offered)
        self._verified.add(peer)
        return offered

    def fingerprint(self, peer: str | None = None) -> str | None:
        """Our own safety number, or the one of a peer's pinned keys (None: not pinned)."""
        if peer is None:
            return self.profile.identity.fingerprint()
        pinned = self.profile.pins.get(peer)
        return pinned.fingerprint() if pinned else None

    # --- presence --------------------------------------------------------------------

    async def get_presence(
        self, user_ids: Sequence[str], *, subscribe: bool = False
    ) -> list[Presence]:
        """Who is online now; with `subscribe`, changes arrive as PresenceChanged events,
        and the subscription is renewed on every reconnect."""
        wanted = list(dict.fromkeys(user_ids))
        for user_id in wanted:
            _check_user_id(user_id)
        if subscribe:
            self._subscriptions.update(dict.fromkeys(wanted))
        found: dict[str, Presence] = {}
        for chunk in _chunks(wanted, MAX_IDS_PER_FRAME):
            answer = await self._replies.request(
                {"action": "getPresence", "userIds": chunk, "subscribe": subscribe},
                _presence_answer_for(chunk),
            )
            for user in answer["users"]:
                found[user["userId"]] = self._presence[user["userId"]]
        return [found[user_id] for user_id in wanted if user_id in found]

    def presence(self, user_id: str) -> Presence | None:
        """The last known presence of a user (kept up to date for subscriptions)."""
        return self._presence.get(user_id)

    # --- reading ---------------------------------------------------------------------

    async def mark_seen(self, peer: str) -> list[str]:
        """Mark the conversation read: the peer gets a `seen` receipt (now, or once online)."""
        ids = self.store.mark_read(peer)
        with contextlib.suppress(NotConnected):
            await self._report_seen()
        return ids

    def history(self, peer: str, limit: int | None = None) -> list[StoredMessage]:
        """The conversation with `peer`, ordered by sentAt then messageId."""
        return self.store.history(peer, limit)

    def conversations(self) -> list[Conversation]:
        return self.store.conversations()

    def rejected(self, sender: str | None = None) -> list[Rejection]:
        """Messages that arrived but could not be read or verified."""
        return self.store.rejected(sender)

    async def sync(self, timeout: float = 10.0) -> int:
        """Ask for everything queued for us; the number of items, once all are stored."""
        self._synced.clear()
        async with self.events() as stream:
            await self._connection.send({"action": "sync"})
            synced = await stream.next_of(Synced, timeout=timeout)
        return synced.count

    async def _receive(self) -> None:
        """Process delivered items one at a time, in the order they came."""
        while True:
            frame = await self._items.get()
            kind = frame.get("type")
            try:
                if kind == "message":
                    await self._receive_message(frame)
                elif kind == "receipt":
                    self._receive_receipt(frame)
                elif kind == "syncDone":
                    await self._acks.flush()
                    self._synced.set()
                    count = frame.get("count")
                    self._publish(Synced(count if isinstance(count, int) else 0))
            except asyncio.CancelledError:
                raise
            except NotConnected:
                pass  # not acked: the item comes again with the next sync
            except Exception:
                # Never crash on one bad item; unacked, it comes again with the next sync.
                log.exception("could not process a %s frame", kind)

    async def _receive_message(self, frame: dict[str, Any]) -> None:
        item_id, sender, message_id = frame.get("id"), frame.get("from"), frame.get("messageId")
        sent_at, body, nonce = frame.get("sentAt"), frame.get("body"), frame.get("nonce")
        if not isinstance(item_id, str):
            log.warning("ignored a message without an id")
            return
        if not (
            is_user_id(sender)
            and is_message_id(message_id)
            and isinstance(body, str)
            and isinstance(nonce, str)
            and isinstance(sent_at, int)
        ):
            log.warning("acked and dropped a malformed message item")
            self._acks.add(item_id)
            return
        if self.store.has_message(sender, message_id):
            self._acks.add(item_id)  # a duplicate: already stored (or rejected) once
            return
        try:
            keys = self.profile.pins.get(sender) or await self.peer_keys(sender)
            text = crypto.decode_plaintext(
                crypto.open_sealed(self.profile.identity, keys, body, nonce)
            )
        except (UnreadableMessage, KeyChanged, UnknownUser) as problem:
            await self._reject(item_id, sender, message_id, sent_at, problem)
            return
        server_ts = frame.get("serverTs")
        stored = self.store.add_incoming(
            sender, message_id, text, sent_at, server_ts if isinstance(server_ts, int) else None
        )
        self._acks.add(item_id)
        if stored:
            message = self.store.get(sender, message_id)
            if message is not None:
                self._publish(MessageAdded(message))

    async def _reject(
        self, item_id: str, sender: str, message_id: str, sent_at: int, problem: Exception
    ) -> None:
        reason = str(problem)
        if isinstance(problem, UnreadableMessage):
            # Tell a changed key (the user must act) from plain garbage.
            try:
                await self.peer_keys(sender)
            except KeyChanged as changed:
                reason = str(changed)
            except Exception:  # best effort: the message is rejected either way
                log.debug("could not re-check the keys of %s", sender)
        if self.store.add_rejected(sender, message_id, sent_at, reason):
            log.warning("rejected message %s from %s", message_id, sender)
            self._publish(MessageRejected(Rejection(sender, message_id, sent_at, reason)))
        self._acks.add(item_id)

    def _receive_receipt(self, frame: dict[str, Any]) -> None:
        item_id, by, ids = frame.get("id"), frame.get("by"), frame.get("messageIds")
        status = _RECEIPT_STATUSES.get(str(frame.get("status")))
        if not isinstance(item_id, str):
            return
        if status is not None and isinstance(by, str) and isinstance(ids, list):
            changed = self.store.apply_receipt(by, [i for i in ids if isinstance(i, str)], status)
            if changed:
                self._publish(StatusChanged(by, tuple(changed), status))
                self._outbox.moved_on(changed)
        self._acks.add(item_id)

    # --- acks and seen marks -----------------------------------------------------------

    async def _report_seen(self) -> None:
        # Acks first: what was seen was delivered, and its receipt should say so first.
        await self._acks.flush()
        for sender, ids in self.store.unreported_seen().items():
            for chunk in _chunks(ids, MAX_IDS_PER_FRAME):
                await self._connection.send(
                    {"action": "markSeen", "to": sender, "messageIds": chunk}
                )
                self.store.mark_seen_reported(sender, chunk)

    # --- frames from the server ---------------------------------------------------------

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("message", "receipt", "syncDone"):
            # Items are stored in order by one task; the reader never waits on them.
            self._items.put_nowait(frame)
        elif kind == "ack":
            self._on_ack(frame)
        elif kind == "error":
            self._on_error(frame)
        elif kind is None:
            # API Gateway's own frames ("Internal server error", ...) carry no type or
            # ref: whatever they answered is retried when its own timer runs out.
            log.warning("the gateway answered an error: %s", str(frame.get("message"))[:200])
        else:
            if kind == "presence":
                self._on_presence(frame)
            self._replies.answer(frame)

    def _on_ack(self, frame: dict[str, Any]) -> None:
        message_id, server_ts = frame.get("messageId"), frame.get("serverTs")
        if isinstance(message_id, str):
            self._outbox.acked(message_id, server_ts if isinstance(server_ts, int) else None)

    def _on_error(self, frame: dict[str, Any]) -> None:
        code, message, ref = str(frame.get("code")), str(frame.get("message", "")), frame.get("ref")
        handled = self._outbox.refused(ref, code, message) or self._replies.refuse(
            ref, code, message
        )
        if not handled:
            self._publish(ServerError(code, message, ref if isinstance(ref, str) else None))

    def _on_presence(self, frame: dict[str, Any]) -> None:
        users = frame.get("users")
        if not isinstance(users, list):
            return
        for user in users:
            if not isinstance(user, dict) or not isinstance(user.get("userId"), str):
                continue
            last_seen = user.get("lastSeen")
            presence = Presence(
                user["userId"],
                user.get("online") is True,
                last_seen if isinstance(last_seen, int) else None,
            )
            self._presence[presence.user_id] = presence
            self._publish(PresenceChanged(presence))

    # --- connection events ------------------------------------------------------------

    async def _on_open(self, session: Session) -> None:
        """Every new connection: sync, renew subscriptions, send seen marks and the outbox."""
        self._synced.clear()
        self._verified.clear()
        await self._connection.send({"action": "sync"})
        for chunk in _chunks(list(self._subscriptions), MAX_IDS_PER_FRAME):
            # The answers refresh our presence cache through _on_presence.
            await self._connection.send(
                {"action": "getPresence", "userIds": chunk, "subscribe": True}
            )
        await self._report_seen()
        self._outbox.wake()

    def _on_status(self, status: ConnectionStatus) -> None:
        if status.state != ConnectionState.ONLINE:
            self._synced.clear()  # a new connection syncs again before we say "synced"
        self._publish(ConnectionChanged(status))

    # --- plumbing ---------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        for stream in self._streams:
            stream.publish(event)


def _presence_answer_for(user_ids: Sequence[str]) -> Callable[[dict[str, Any]], bool]:
    """A `presence` frame that lists exactly the users asked about answers the request."""
    asked = set(user_ids)

    def matches(frame: dict[str, Any]) -> bool:
        users = frame.get("users")
        return (
            frame.get("type") == "presence"
            and isinstance(users, list)
            and {user.get("userId") for user in users if isinstance(user, dict)} == asked
        )

    return matches


def _check_user_id(user_id: str) -> None:
    if not is_user_id(user_id):
        raise ValueError(f"{user_id!r} is not a valid user id (1-64 of A-Z a-z 0-9 _ . -)")


def _chunks(items: Sequence[str] | Iterable[str], size: int) -> list[list[str]]:
    listed = list(items)
    return [listed[start : start + size] for start in range(0, len(listed), size)]
