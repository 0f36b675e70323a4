"""`MessengerClient`: the SDK an app uses. The client is the source of truth.

    profile = Profile.load("alice")
    async with MessengerClient("ws://127.0.0.1:8080/local", profile) as client:  # one cell
    # or MessengerClient(profile=profile, directory_url="https://.../directory.json")
        async with client.events() as events:
            message = await client.send("bob", "hello")       # pending, in the outbox
            await client.wait_sent(message.message_id)        # the server stored it
            async for event in events: ...                    # messages, receipts, presence

What it guarantees, following docs/protocol.md:

- **Sending** (`messenger_client.outbox`): each text is encrypted once (NaCl Box, fresh
  nonce, ULID messageId, strictly increasing sentAt) and its frame kept in the local
  outbox; the outbox sends one message at a time, in order, and resends the *same
  frame* with backoff until the server's `ack`, across reconnects and restarts. Texts
  too long for one frame are refused before anything is sent.
- **Receiving** (`messenger_client.inbox`): every `message` is deduplicated by
  `(from, messageId)`, decrypted with the sender's pinned key (which verifies the
  sender), stored, and only then acked. A message that does not open is recorded as
  rejected (no text) and acked as well.
- **Keys** (`messenger_client.pinning`): a peer's keys are fetched with `getKeys` and
  pinned on first use; a different key later raises `KeyChanged` (sending) or rejects
  the message (receiving) until the user re-verifies the safety number and calls `trust`.
- **Linked devices** (`messenger_client.devices`, docs/protocol.md §8): a profile is
  device 1 (the account key) or a linked device with its own keys. When either side has
  linked devices, a message is sealed once and its key boxed for each of the peer's
  devices and our other ones (lists verified under the pinned account keys); copies of
  our own messages from our other devices join the history as ours. STALE_DEVICES:
  the lists are fetched again and the message sealed again (same messageId).
- **Presence** (`messenger_client.presence`): answers and subscribed changes, kept; who
  may see ours (by default, the people we wrote to: `ClientSettings.presence_visibility`),
  told to the server before our first message to someone new, and on every connection
  before the outbox goes.
- **Connection** (`messenger_client.connection`): to a server's URL, or to the user's
  home cell named by the directory (`messenger_client.directory`, docs/protocol.md §6);
  `sync` after every (re)connect (with `batch`, following each page's cursor until the
  last), presence subscriptions renewed, pings and reconnects.
- **Failover** (docs/protocol.md §7, the rules in `messenger_client.failover`): our
  messages keep their frame until `delivered`, with the epoch of their `ack` and the cell
  that stored it; our `seen` marks are kept until their `seenStored`, with its epoch.
  When a `syncDone` names a new `epoch`, or the directory moves our home cell, every one
  of them goes again, byte for byte; when a newer directory shows another epoch for the
  cell that stored one, or another home cell for its recipient, that one goes again.
  With a directory, the client learns of a newer version from `dv` (in `ack`,
  `syncDone`, `pong`; never by polling, docs/protocol.md §6) and reads that one. A
  message refused UNKNOWN_RECIPIENT within an hour after its recipient's cell changed
  epoch is kept and sent again, backing off, for up to a day.

Every frame goes out as a `messenger_protocol.frames` class, and every frame that
comes in is read by `read_server_frame` and dispatched here on its class.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ulid import ULID

from messenger_client import crypto, server_settings
from messenger_client.connection import (
    Connection,
    ConnectionPolicy,
    ConnectionState,
    ConnectionStatus,
    Session,
)
from messenger_client.devices import LinkedDevices
from messenger_client.directory import FixedServer, HomeCell, Locator
from messenger_client.errors import KeyChanged, NotConnected, RequestFailed, UnknownUser
from messenger_client.events import (
    ConnectionChanged,
    Event,
    EventStream,
    MessageAdded,
    Presence,
    ServerError,
    Synced,
)
from messenger_client.failover import SINGLE_CELL, EpochChanges, moved_since
from messenger_client.inbox import Inbox, MalformedItem
from messenger_client.keystore import PeerKeys, Profile, check_user_id
from messenger_client.outbox import Outbox
from messenger_client.pinning import KeyPinning
from messenger_client.presence import PresenceTracker
from messenger_client.replies import Replies
from messenger_client.store import (
    Conversation,
    HeldMessage,
    HistoryStore,
    Rejection,
    StoredAt,
    StoredMessage,
)
from messenger_protocol import client_rules
from messenger_protocol.cells import Directory
from messenger_protocol.devices import DeviceList
from messenger_protocol.errors import BadRequest
from messenger_protocol.frames import (
    SERVER_FRAMES,
    AckFrame,
    ErrorFrame,
    ItemsFrame,
    MessageFrame,
    Ping,
    PongFrame,
    PresenceFrame,
    PresenceVisibilityFrame,
    ReceiptFrame,
    SeenStoredFrame,
    ServerFrame,
    SyncDoneFrame,
    read_server_frame,
)
from messenger_protocol.limits import (
    DIRECTORY_FETCH_JITTER_SECONDS,
    MAX_CONTACTS,
    PRIMARY_DEVICE_ID,
)
from messenger_protocol.names import Action, FrameType, PresenceVisibility, PushPlatform

log = logging.getLogger(__name__)

_ITEM_TYPES = (FrameType.MESSAGE, FrameType.RECEIPT)


def _now_ms() -> int:
    return int(time.time() * 1000)


# The history's meta keys for who may see our presence: the user's choice on this device
# until the server has it, and (device 1) the settings' default the account last got.
VISIBILITY_KEY = "presence_visibility"
DEFAULT_VISIBILITY_KEY = "presence_visibility_default"


@dataclass(frozen=True)
class ClientSettings:
    """Timings (seconds). The defaults, the client rules' (`messenger_protocol.client_rules`,
    the JavaScript SDK's too), suit a real network; tests shorten them."""

    connection: ConnectionPolicy = field(default_factory=ConnectionPolicy)
    request_timeout: float = client_rules.REQUEST_TIMEOUT_SECONDS
    # A message not acked within this long is resent (the same frame), then backing off.
    resend_base: float = client_rules.RESEND_BASE_SECONDS
    resend_cap: float = client_rules.RESEND_CAP_SECONDS
    # Acks of items that arrive together (a sync) go out in one frame.
    ack_delay: float = client_rules.ACK_DELAY_SECONDS
    # Who may see our presence: CONTACTS (the people we wrote to, at most 1,000, kept up
    # to date), EVERYONE or NOBODY; None leaves the server's setting as it is.
    presence_visibility: PresenceVisibility | None = client_rules.DEFAULT_PRESENCE_VISIBILITY
    # With a directory: the most a client waits before fetching a newer version a `dv`
    # named (docs/protocol.md §6: spread, so that a change does not bring every client at
    # once). Never read on a timer.
    directory_jitter: float = DIRECTORY_FETCH_JITTER_SECONDS


@dataclass(frozen=True)
class ResendReport:
    """What `wait_resends` saw: messages sent again after a failover (§7) by this client,
    how many of them are still unanswered, `seen` marks unanswered, and messages kept
    after UNKNOWN_RECIPIENT for a later try."""

    resent: int
    left: int
    seen_marks_left: int
    kept: int


class MessengerClient:
    """One profile's connection to its server (or its home cell), with its local history."""

    def __init__(
        self,
        server_url: str | None = None,
        profile: Profile | None = None,
        *,
        directory_url: str | None = None,
        directory_key: str | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        """`server_url`: a cell's WebSocket URL; or `directory_url`: the directory's
        (docs/protocol.md §6), which names the user's home cell, and `directory_key` its
        public key (None: the one the profile keeps; for a directory on this machine, the
        one it serves at /directory.key, then kept)."""
        if profile is None or (server_url is None) == (directory_url is None):
            raise ValueError("give a profile, and a server_url or a directory_url")
        self.profile = profile
        self.settings = settings or ClientSettings()
        self.store = HistoryStore(profile.history_path, profile.user_id)
        self._epochs = EpochChanges(self.store)
        locator: Locator
        self._home: HomeCell | None = None
        if directory_url is not None:
            locator = self._home = HomeCell(
                directory_url,
                profile.user_id,
                self.store,
                on_home_moved=self._home_moved,
                on_cells_moved=self._cells_moved,
                directory_key=directory_key,
                jitter_seconds=self.settings.directory_jitter,
            )
        else:
            assert server_url is not None
            locator = FixedServer(server_url)
        self._connection = Connection(
            locator,
            lambda url: crypto.signed_url(url, profile.identity, time.time()),
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
            keep_unknown_recipient=self._keeps_unknown_recipient,
            reseal=self._reseal,
        )
        self._replies = Replies(self._connection, self.settings.request_timeout)
        self._keys = KeyPinning(
            profile, self._connection, self._replies, self.settings.request_timeout
        )
        self._devices = LinkedDevices(profile, self.store, self._keys, self._replies)
        self._presence = PresenceTracker(self._connection, self._replies, self._publish)
        self._inbox = Inbox(
            self.store,
            profile.identity,
            self._keys,
            self._connection,
            self._outbox,
            self._presence,
            ack_delay=self.settings.ack_delay,
            publish=self._publish,
            on_epoch=self._home_epoch,
            resend_base=self.settings.resend_base,
            resend_cap=self.settings.resend_cap,
        )
        self._last_sent_at = self.store.last_sent_at()
        self._tasks: list[asyncio.Task[None]] = []
        # Short errands (a directory read a pong asked for), kept until done.
        self._errands: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- life ------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.profile.user_id

    @property
    def server_url(self) -> str:
        """Where the client connects: the server's URL, or which directory's home cell."""
        return self._connection.server_url

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
        """Start connecting (in the background), the outbox and the inbox; once started,
        connect again after the server closed the connection for good (REPLACED: another
        connection of this device took its place, docs/protocol.md §3 Closing)."""
        if self._tasks:
            self._connection.start()
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._outbox.run()), loop.create_task(self._inbox.run())]
        self._connection.start()

    async def close(self) -> None:
        """Send the acks and seen marks not sent yet, then disconnect and close the history."""
        if self._closed:
            return
        self._closed = True
        await self._inbox.close()
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
        await asyncio.wait_for(self._inbox.wait_synced(), timeout)

    def drop_connection(self) -> None:
        """Abort the socket as a network failure would (the client reconnects by itself)."""
        self._connection.drop()

    @property
    def epoch(self) -> str | None:
        """The home cell's generation named by the last `syncDone` (kept in the history);
        EpochChanged events announce a new one."""
        return self._inbox.epoch

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
        check_user_id(peer)
        keys = await self._keys.for_sending(peer)
        own_devices = await self._devices.current()
        contacts = self.contacts()
        if peer not in contacts and self._connection.session is not None:
            # The peer may see us from now on: the server hears it before the message,
            # so that they see us when it reaches them (offline, the next connection
            # tells it before the outbox goes).
            await self._share_presence([peer, *contacts][:MAX_CONTACTS])
        message_id = str(ULID())
        sent_at = self._next_sent_at()
        frame = crypto.send_message_frame(
            self.profile.identity,
            keys,
            message_id,
            text,
            sent_at,
            self._keys.devices_of(peer),
            own_devices,
        )
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

    async def _reseal(self, message_id: str, peer: str) -> str | None:
        """STALE_DEVICES (§8): both lists fetched again, the message sealed again for them
        (its messageId, text and sentAt kept); None if it cannot be (keys changed)."""
        message = self.store.get(self.user_id, message_id)
        if message is None:
            return None
        try:
            keys = await self._keys.check(peer)
            await self._keys.check(self.user_id)
        except (KeyChanged, UnknownUser, NotConnected, RequestFailed) as problem:
            log.info("message %s not sealed again: %s", message_id, problem)
            return None
        frame = crypto.send_message_frame(
            self.profile.identity,
            keys,
            message_id,
            message.text,
            message.sent_at,
            self._keys.devices_of(peer),
            self._keys.devices_of(self.user_id),
        )
        self.store.replace_frame(message_id, frame)
        return frame

    # --- linked devices (docs/protocol.md §8) -----------------------------------------

    @property
    def device_id(self) -> str:
        """Which of the user's devices this profile is (`1`: the account key's)."""
        return self.profile.identity.device_id

    async def devices(self) -> DeviceList:
        """Our device list as the server holds it, verified under the account key."""
        return await self._devices.current()

    async def link_device(self, code: str) -> DeviceList:
        """Device 1: add the device a link code (`ml1:...`) names; the list as stored.
        InvalidLinkCode (another user, a bad code), NotDeviceOne, RequestFailed."""
        return await self._devices.link(code)

    async def remove_device(self, device_id: str) -> DeviceList:
        """Device 1: remove a linked device; its connections close and its queue goes."""
        return await self._devices.remove(device_id)

    # --- keys ------------------------------------------------------------------------

    async def peer_keys(self, peer: str) -> PeerKeys:
        """The peer's keys from the server, pinned on first use; KeyChanged if they differ."""
        return await self._keys.check(peer)

    async def trust(self, peer: str, fingerprint: str) -> PeerKeys:
        """Pin the peer's current keys after the user compared their safety number.

        `fingerprint` is the number the peer read out (from `fingerprint()` on their
        side); it must match the keys the server gives now, or nothing changes.
        Then what the peer sent while held opens, joins the history in order, and is
        announced (MessageAdded); what does not open stays held, as unreadable.
        """
        keys = await self._keys.trust(peer, fingerprint)
        self._inbox.open_held(peer)
        return keys

    def fingerprint(self, peer: str | None = None) -> str | None:
        """Our own safety number, or the one of a peer's pinned keys (None: not pinned)."""
        if peer is None and self.profile.identity.is_primary:
            return self.profile.identity.fingerprint()
        # A linked device shows the account key's number, as device 1 does.
        return self._keys.fingerprint(peer or self.user_id)

    # --- presence --------------------------------------------------------------------

    async def get_presence(
        self, user_ids: Sequence[str], *, subscribe: bool = False
    ) -> list[Presence]:
        """Who is online now; with `subscribe`, changes arrive as PresenceChanged events,
        and the subscription is renewed on every reconnect."""
        return await self._presence.get(user_ids, subscribe=subscribe)

    def presence(self, user_id: str) -> Presence | None:
        """The last known presence of a user (kept up to date for subscriptions)."""
        return self._presence.last_known(user_id)

    def contacts(self) -> list[str]:
        """The people we wrote to, the most recent first (at most 1,000): those who may
        see our presence with the default `presence_visibility`."""
        return self.store.peers_written_to(MAX_CONTACTS)

    async def set_presence_visibility(
        self, visibility: PresenceVisibility
    ) -> PresenceVisibilityFrame | None:
        """Choose who may see the user's presence, on every device of theirs; the server's
        answer (None if we are offline: the choice is kept, and told on the next connection)."""
        self.store.set_meta(VISIBILITY_KEY, visibility.value)
        default = self.settings.presence_visibility
        if default is not None:
            # A choice supersedes the settings' default: it is never sent after it.
            self.store.set_meta(DEFAULT_VISIBILITY_KEY, default.value)
        if self._connection.session is None:
            return None
        answer = await self._presence.choose(visibility, self.contacts())
        self.store.set_meta(VISIBILITY_KEY, "")
        return answer

    def presence_visibility_answer(self) -> PresenceVisibilityFrame | None:
        """What the server last answered to our presence visibility."""
        return self._presence.last_answer

    async def _share_presence(self, contacts: Sequence[str] | None = None) -> None:
        """Keep the server's presence visibility as the user chose it, and our contacts on
        its list (best effort: a new connection tries again). The settings' default is the
        account's first setting, given by device 1 (and again if its app's default
        changes); a linked device takes the user's setting as it is (docs/protocol.md §8)."""
        contacts = self.contacts() if contacts is None else contacts
        chosen = self.store.get_meta(VISIBILITY_KEY)
        default = self.settings.presence_visibility
        try:
            if chosen:
                await self._presence.choose(PresenceVisibility(chosen), contacts)
                self.store.set_meta(VISIBILITY_KEY, "")
            elif default is None:
                return
            elif (
                self.device_id == PRIMARY_DEVICE_ID
                and self.store.get_meta(DEFAULT_VISIBILITY_KEY) != default.value
            ):
                given = functools.partial(self.store.get_meta, DEFAULT_VISIBILITY_KEY)
                answer = await self._presence.choose(
                    default, contacts, unless=lambda: given() == default.value
                )
                if answer is None:
                    # Given meanwhile (by this connection's first call, or a choice):
                    # our contacts are still to be on the list.
                    await self._presence.add_contacts(contacts)
                else:
                    self.store.set_meta(DEFAULT_VISIBILITY_KEY, default.value)
            else:
                await self._presence.add_contacts(contacts)
        except (NotConnected, RequestFailed) as problem:
            log.info("presence visibility not updated yet: %s", problem)

    # --- settings held by the server ---------------------------------------------------

    async def get_settings(self) -> server_settings.Settings:
        """Presence visibility, contacts and blocked users as the server holds them."""
        return await server_settings.get_settings(self._replies)

    async def set_blocked(
        self,
        *,
        add: Sequence[str] | None = None,
        remove: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> int:
        """Block users (`add`), unblock them (`remove`), or replace the whole list
        (`user_ids`); the number now blocked. The blocked are never told: what they send
        is acknowledged as usual and goes nowhere. BadRequest (before sending) for a bad
        id or `user_ids` with `add`/`remove`; RequestFailed if the server refuses."""
        return await server_settings.set_blocked(
            self._replies, add=add, remove=remove, user_ids=user_ids
        )

    async def register_push(self, platform: PushPlatform, token: str) -> None:
        """Register this device for mobile push (each device registers its own token; a
        device removed from the list loses it). ValueError for a malformed token."""
        await server_settings.register_push(self._replies, platform, token)

    # --- reading ---------------------------------------------------------------------

    async def mark_seen(self, peer: str) -> list[str]:
        """Mark the conversation read: the peer gets a `seen` receipt (now, or once online)."""
        ids = self.store.mark_read(peer)
        with contextlib.suppress(NotConnected):
            await self._inbox.report_seen()
        return ids

    def history(self, peer: str, limit: int | None = None) -> list[StoredMessage]:
        """The conversation with `peer`, ordered by sentAt then messageId."""
        return self.store.history(peer, limit)

    def conversations(self) -> list[Conversation]:
        return self.store.conversations()

    def rejected(self, sender: str | None = None) -> list[Rejection]:
        """Messages that arrived but could not be read or verified (held ones too)."""
        return self.store.rejected(sender)

    def held(self, sender: str | None = None) -> list[HeldMessage]:
        """Messages that did not open, kept as they came, each with why (`held_because`):
        the sender's keys changed (they open after `trust`), or unreadable."""
        return self.store.held(sender)

    async def sync(self, timeout: float = 10.0) -> int:
        """Ask for everything queued for us (every page); the number of items, once all
        are stored."""
        async with self.events() as stream:
            await self._inbox.request_sync()
            synced = await stream.next_of(Synced, timeout=timeout)
        return synced.count

    # --- frames from the server ---------------------------------------------------------

    def _on_frame(self, document: dict[str, Any]) -> None:
        """Every frame the connection reads, in order: read it, then hand it on."""
        kind = document.get(ServerFrame.DISCRIMINATOR)
        if kind is None:
            # API Gateway's own frames ("Internal server error", ...) carry no type or
            # ref: whatever they answered is retried when its own timer runs out.
            log.warning("the gateway answered an error: %s", str(document.get("message"))[:200])
            return
        try:
            frame = read_server_frame(document)
        except BadRequest as problem:
            self._on_unreadable(kind, document, problem)
            return
        # The directory's newest version, as the cell knows it (§6: instead of polling).
        version = getattr(frame, "dv", None)
        if isinstance(version, int) and self._home is not None:
            self._spawn(self._learn_directory_version(self._home, version))
        match frame:
            case MessageFrame() | ReceiptFrame() | SyncDoneFrame():
                self._inbox.put(frame)  # stored in order by one task
            case ItemsFrame(items=items):
                for item in items:
                    self._inbox.put(item)
            case AckFrame(message_id=message_id, server_ts=server_ts, epoch=epoch, dv=dv):
                sent = self.store.get(self.user_id, message_id)
                peer = sent.peer if sent is not None else None
                self._outbox.acked(message_id, server_ts, self._stored_at(peer, epoch, dv))
            case SeenStoredFrame(to=to, message_ids=message_ids, epoch=epoch):
                self._inbox.seen_stored(to, message_ids, self._stored_at(to, epoch, None))
            case ErrorFrame(code=code, message=message, ref=ref, retry_after=retry_after):
                handled = (
                    self._outbox.refused(ref, code, message, retry_after)
                    or self._replies.refuse(ref, code, message)
                    or (ref == Action.SYNC and self._inbox.sync_refused(code, retry_after))
                    or (ref == Action.MARK_SEEN and self._inbox.seen_refused(code, retry_after))
                    or (ref == Action.ACK and self._inbox.ack_refused(code, retry_after))
                )
                if not handled:
                    self._publish(ServerError(code, message, ref))
            case PresenceFrame():
                self._presence.update(frame)
                self._replies.answer(frame)
            case _:
                self._replies.answer(frame)  # keys, pong, pushRegistered: answers

    def _on_unreadable(self, kind: object, document: dict[str, Any], problem: BadRequest) -> None:
        """A frame the protocol's reader refused: a malformed one, or of a type we do not know."""
        if not (isinstance(kind, str) and kind in SERVER_FRAMES):
            log.warning("ignored a frame of unknown type %r", str(kind)[:64])
        elif kind == FrameType.ITEMS and isinstance(document.get("items"), list):
            # One bad item spoils the reading of the whole frame: take its items one by
            # one, so that the good ones are stored and the bad one dropped in its turn.
            for item in document["items"]:
                if isinstance(item, dict) and item.get("type") in _ITEM_TYPES:
                    self._on_frame(item)
                else:
                    log.warning("ignored an entry of an items frame that is no item")
        elif kind in _ITEM_TYPES:
            # Acked and dropped in its turn: left queued, it would come back on every sync.
            self._inbox.put(MalformedItem(FrameType(kind), document.get("id"), str(problem)))
        else:
            log.warning("ignored a malformed %s frame: %s", kind, problem)

    # --- connection events ------------------------------------------------------------

    async def _on_open(self, session: Session) -> None:
        """Every new connection: sync, renew subscriptions, send seen marks, and tell who
        may see us; the outbox goes once the server has our visibility (`Session.ready`),
        so that no message of ours reaches a peer who could not see us yet."""
        self._keys.new_connection()
        self._presence.new_connection()
        if self._home is not None and self._home.directory is not None:
            # The directory we connected by (no fetch): each cell's epoch as we know it,
            # so that a later one shows when it changed (§7), and rule 3 on it.
            self._directory_news(self._home.directory)
        # Best effort (a new connection tries again), and never in the way of the sync.
        visibility = asyncio.get_running_loop().create_task(self._share_presence())
        try:
            await self._inbox.request_sync()
            await self._presence.renew_subscriptions()
            await self._inbox.report_seen()
        finally:
            await visibility
        self._outbox.wake()

    # --- failover (docs/protocol.md §7; the rules: messenger_client.failover) ----------------

    def _stored_at(self, peer: str | None, epoch: str | None, dv: int | None) -> StoredAt:
        """Where an answer (`ack`, `seenStored`) says a frame for `peer` was stored: its
        epoch, the peer's home cell by our directory now, the directory version known."""
        directory = self._home.directory if self._home is not None else None
        if directory is None:
            return StoredAt(epoch, None, dv)
        cell = directory.home_of(peer) if peer is not None else None
        return StoredAt(epoch, cell, max(directory.version, dv or 0))

    def _home_epoch(self, epoch: str) -> None:
        """A `syncDone` named our home cell's epoch: remember when it changed."""
        directory = self._home.directory if self._home is not None else None
        cell = directory.home_of(self.user_id) if directory is not None else SINGLE_CELL
        self._epochs.note(cell, epoch, _now_ms())
        if self._inbox.epoch is not None and epoch != self._inbox.epoch:
            # §8: the cell may have lost our device list with its last writes.
            self._spawn(self._devices.republish())

    def _home_moved(self) -> None:
        """Rule 2: the directory moved our home cell: what was not delivered goes again,
        every `seen` mark, and who may see us is told again."""
        self._presence.home_moved()
        self._outbox.resend_undelivered()
        self._inbox.resend_seen()

    def _cells_moved(self, directory: Directory, cells: frozenset[str]) -> None:
        """The directory moved these cells (another url): rule 3, and what was stored
        before we knew where (no cell kept) to their users goes again."""
        self._directory_news(directory, cells)

    def _directory_news(self, directory: Directory, moved: frozenset[str] = frozenset()) -> None:
        """Rule 3 on a directory just read: what it shows stored elsewhere goes again."""
        self._epochs.note_directory(directory, _now_ms())

        def again(peer: str, stored: StoredAt) -> bool:
            return moved_since(stored, directory, peer, moved)

        self._outbox.resend_undelivered(again)
        if self._inbox.resend_seen(again):
            self._spawn(self._report_seen())

    async def _report_seen(self) -> None:
        with contextlib.suppress(NotConnected):
            await self._inbox.report_seen()

    async def _keeps_unknown_recipient(self, peer: str) -> bool:
        """UNKNOWN_RECIPIENT: keep the message if the recipient's cell changed epoch within
        the hour (§7), as the newest directory says. Our cell names the newest version in
        `pong` (§6: the directory is never polled), which is fetched at once if newer: the
        answer cannot wait for the spread a `dv` in passing gets."""
        if self._home is None or self._home.directory is None:
            return self._epochs.keeps_unknown_recipient(SINGLE_CELL, _now_ms())
        with contextlib.suppress(NotConnected, RequestFailed):
            pong = await self._replies.request(Ping(), PongFrame, lambda _: True)
            if pong.dv is not None:
                await self._home.learn_version(pong.dv, at_once=True)
        directory = self._home.directory
        self._directory_news(directory)
        return self._epochs.keeps_unknown_recipient(directory.home_of(peer), _now_ms())

    async def _learn_directory_version(self, home: HomeCell, version: int) -> None:
        await home.learn_version(version)
        if home.directory is not None:
            self._directory_news(home.directory)

    async def wait_resends(self, timeout: float) -> ResendReport:
        """Until the messages this client sent again after a failover (§7) are answered
        and our `seen` marks too, or `timeout`; what was resent and what is left (the
        history keeps it for the next connection)."""
        deadline = time.monotonic() + timeout
        while True:
            left = sorted(i for i in self._outbox.resent if self.store.needs_sending(i))
            outstanding = self.store.resends_outstanding()
            if (not left and not outstanding.seen_marks) or time.monotonic() >= deadline:
                return ResendReport(
                    resent=len(self._outbox.resent),
                    left=len(left),
                    seen_marks_left=outstanding.seen_marks,
                    kept=outstanding.kept,
                )
            await asyncio.sleep(0.05)

    def _spawn(self, errand: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(errand)
        self._errands.add(task)
        task.add_done_callback(self._errands.discard)

    def _on_status(self, status: ConnectionStatus) -> None:
        if status.state != ConnectionState.ONLINE:
            self._inbox.connection_lost()
        self._publish(ConnectionChanged(status))

    # --- plumbing ---------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        for stream in self._streams:
            stream.publish(event)
