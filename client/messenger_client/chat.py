"""`messenger chat PEER`: an interactive terminal chat (textual) on top of the SDK.

What the screen shows, kept live by the client's events:

- every conversation on the left, the newest first, with its unread count (Ctrl+N and
  Ctrl+P switch; a message in another conversation also says so in a notice);
- the conversation in order (sentAt, then messageId), ours with a mark: … pending,
  ✓ sent (the server stored it), ✓✓ delivered (their device stored it), ✓✓ seen;
- the peer's presence in the title: online, when last seen, or why it is not shown;
- a banner while offline, saying that (and when) we reconnect;
- when the peer's keys changed: a line that stays in the header and in the transcript,
  with both safety numbers, how many of their messages are held, and `/trust NUMBER`
  to accept the new keys once compared (the held messages then show, in order);
- messages of the peer that could not be opened otherwise (damaged, or not meant for
  this device), said as such, with no promise that trusting opens them; text that
  could not be sent stays in the box, marked unsent.

Messages from the peer are marked seen while the chat is open: it is on the screen.
Ctrl+C quits; with unsent text in the box, it asks for a second Ctrl+C.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from datetime import datetime

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.logging import TextualHandler
from textual.widgets import Footer, Input, Static

from messenger_client.client import MessengerClient
from messenger_client.connection import ConnectionState, ConnectionStatus
from messenger_client.errors import DeviceListRefused, KeyChanged, MessengerError
from messenger_client.events import (
    ConnectionChanged,
    MessageAdded,
    MessageRejected,
    Presence,
    PresenceChanged,
    SendFailed,
    StatusChanged,
)
from messenger_client.store import (
    STATUS_MARKS,
    HoldReason,
    MessageStatus,
    StoredMessage,
    held_notice,
    held_notices,
)

log = logging.getLogger(__name__)

HISTORY_SHOWN = 500


def message_line(message: StoredMessage) -> str:
    """How one message reads on screen (plain text: no markup from what people type)."""
    stamp = datetime.fromtimestamp(message.sent_at / 1000).strftime("%X")
    if not message.outgoing:
        return f"{stamp}  {message.sender}: {message.text}"
    line = f"{stamp}  you: {message.text}  {STATUS_MARKS.get(message.status, message.status.value)}"
    if message.status == MessageStatus.FAILED and message.error:
        line += f" ({message.error})"
    return line


def presence_text(presence: Presence | None) -> str:
    if presence is None:
        return "…"
    if presence.online:
        return "● online"
    if presence.hidden or presence.last_seen is None:
        return f"○ {presence.hidden_reason()}"
    seen = datetime.fromtimestamp(presence.last_seen / 1000).strftime("%Y-%m-%d %H:%M")
    return f"○ last seen {seen}"


def banner_text(status: ConnectionStatus) -> str | None:
    """What the offline banner says, or None while online."""
    if status.state == ConnectionState.ONLINE:
        return None
    if status.state == ConnectionState.OFFLINE:
        when = f" in {status.retry_in:.0f}s" if status.retry_in and status.retry_in >= 1 else ""
        reason = f" ({status.error})" if status.error else ""
        return f"⚠ offline: reconnecting{when}{reason}. Messages wait in the outbox."
    if status.state == ConnectionState.CONNECTING:
        return "⚠ connecting…"
    if status.state == ConnectionState.REPLACED:
        # Final until started again (docs/protocol.md §3 Closing): reconnecting would loop.
        return "⚠ opened elsewhere: not reconnecting. Messages wait in the outbox."
    if status.state == ConnectionState.REMOVED:
        # docs/protocol.md §8: every handshake would be refused until device 1 links it again.
        return f"⚠ not reconnecting: {status.error}."
    return "⚠ disconnected"


class MessageView(Static):
    """One message; re-rendered when its status moves."""

    def __init__(self, message: StoredMessage) -> None:
        super().__init__(
            message_line(message),
            markup=False,
            classes="outgoing" if message.outgoing else "incoming",
        )
        self.message = message

    def show(self, message: StoredMessage) -> None:
        self.message = message
        self.update(message_line(message))


class ChatApp(App[int]):
    """A chat with one peer, driven by a started `MessengerClient`."""

    TITLE = "messenger"
    CSS = """
    #peer { background: $primary; color: $text; padding: 0 1; text-style: bold; }
    #keys { background: $warning; color: $text; padding: 0 1; display: none; }
    #keys.shown { display: block; }
    #conversations { width: 24; border-right: solid $primary; padding: 0 1; }
    #main { width: 1fr; }
    #input.unsent { border: tall $error; }
    #banner { background: $error; color: $text; padding: 0 1; display: none; }
    #banner.shown { display: block; }
    #messages { height: 1fr; padding: 0 1; }
    .outgoing { color: $text; }
    .incoming { color: $accent; }
    .notice { color: $warning; }
    """
    BINDINGS = [
        Binding("ctrl+c", "quit", "Quit", priority=True),
        Binding("ctrl+n", "next_conversation", "Next chat", priority=True),
        Binding("ctrl+p", "previous_conversation", "Previous chat", priority=True),
    ]

    def __init__(self, client: MessengerClient, peer: str) -> None:
        super().__init__()
        self.client = client
        self.peer = peer
        self._views: dict[tuple[str, str], MessageView] = {}
        self._order: list[tuple[int, str, str]] = []  # (sent_at, message_id, sender)
        self._send_lock = asyncio.Lock()
        self._key_changes: dict[str, KeyChanged] = {}  # peers whose keys changed, as known
        self._quit_asked = False

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(id="conversations", markup=False)
            with Vertical(id="main"):
                yield Static(id="peer", markup=False)
                yield Static(id="keys", markup=False)
                yield Static(id="banner", markup=False)
                yield VerticalScroll(id="messages")
                yield Input(id="input")
        yield Footer()

    async def on_mount(self) -> None:
        self._show_status(self.client.status)
        self.run_worker(self._follow(), exclusive=True, group="events")
        await self._open(self.peer)
        self.query_one("#input", Input).focus()

    async def _open(self, peer: str) -> None:
        """Show the conversation with `peer` (on start, and on each switch)."""
        self.peer = peer
        self._views.clear()
        self._order.clear()
        await self.query_one("#messages", VerticalScroll).remove_children()
        self.query_one(
            "#input", Input
        ).placeholder = f"Message {peer} (Enter sends, Ctrl+N/Ctrl+P other chats, Ctrl+C quits)"
        self._show_presence(self.client.presence(peer))
        for message in self.client.history(peer, HISTORY_SHOWN):
            await self._show_message(message)
        await self._show_key_change()
        self.run_worker(self._start_conversation(), group="setup")
        self._show_conversations()

    # --- conversations ------------------------------------------------------------------

    def conversation_peers(self) -> list[str]:
        """The peers in the list, the newest conversation first (the open one included)."""
        peers = [conversation.peer for conversation in self.client.conversations()]
        held = [held.sender for held in self.client.held()]
        return list(dict.fromkeys([*peers, *held, self.peer]))

    def _show_conversations(self) -> None:
        unread = {c.peer: c.unread for c in self.client.conversations()}
        held: dict[str, int] = {}
        for message in self.client.held():
            held[message.sender] = held.get(message.sender, 0) + 1
        lines = ["Chats (Ctrl+N/P)"]
        for peer in self.conversation_peers():
            mark = "▸" if peer == self.peer else " "
            count = unread.get(peer, 0) if peer != self.peer else 0
            line = f"{mark} {peer}" + (f" ({count})" if count else "")
            if held.get(peer):
                line += f" ⚠{held[peer]} held"
            lines.append(line)
        self.query_one("#conversations", Static).update("\n".join(lines))

    async def action_next_conversation(self) -> None:
        await self._switch(+1)

    async def action_previous_conversation(self) -> None:
        await self._switch(-1)

    async def _switch(self, step: int) -> None:
        peers = self.conversation_peers()
        if len(peers) > 1:
            await self._open(peers[(peers.index(self.peer) + step) % len(peers)])

    async def action_quit(self) -> None:
        box = self.query_one("#input", Input)
        if box.value.strip() and not self._quit_asked:
            self._quit_asked = True
            self.notify(
                "The message box holds text that was not sent: Ctrl+C again quits without it.",
                severity="warning",
                timeout=10,
            )
            return
        self.exit()

    @on(Input.Changed, "#input")
    def _typing(self) -> None:
        self._quit_asked = False

    async def _start_conversation(self) -> None:
        peer = self.peer
        if self.client.held(peer):
            await self._learn_key_change()
        try:
            await self.client.mark_seen(peer)
            presence = await self.client.get_presence([peer], subscribe=True)
        except (MessengerError, TimeoutError):
            return  # offline: subscriptions are renewed once the client reconnects
        self._show_conversations()
        if presence and peer == self.peer:
            self._show_presence(presence[0])

    async def _follow(self) -> None:
        async with self.client.events() as events:
            async for event in events:
                await self._apply(event)

    async def _apply(self, event: object) -> None:
        if isinstance(event, MessageAdded) and event.message.peer == self.peer:
            await self._show_message(event.message)
            if not event.message.outgoing:
                await self.client.mark_seen(self.peer)
            self._show_conversations()
        elif isinstance(event, MessageAdded):
            if not event.message.outgoing:
                self.notify(
                    f"new message from {event.message.sender} (Ctrl+N/Ctrl+P to switch)",
                    title=event.message.sender,
                )
            self._show_conversations()
        elif isinstance(event, (StatusChanged, SendFailed)) and event.peer == self.peer:
            ids = event.message_ids if isinstance(event, StatusChanged) else (event.message_id,)
            for message_id in ids:
                self._refresh_message(self.client.user_id, message_id)
            if isinstance(event, SendFailed):
                self.notify(f"not sent: {event.code} {event.reason}", severity="error")
        elif isinstance(event, PresenceChanged) and event.presence.user_id == self.peer:
            self._show_presence(event.presence)
        elif isinstance(event, ConnectionChanged):
            self._show_status(event.status)
        elif isinstance(event, MessageRejected):
            self._show_conversations()
            if event.rejection.sender == self.peer:
                await self._learn_key_change()
            else:
                because = event.rejection.held_because or HoldReason.UNREADABLE
                self.notify(held_notice(event.rejection.sender, 1, because), severity="warning")

    # --- key changes -----------------------------------------------------------------------

    async def _learn_key_change(self) -> None:
        """Ask the server for the peer's keys: a change is then shown until trusted."""
        try:
            await self.client.peer_keys(self.peer)
        except KeyChanged as changed:
            self._key_changes[self.peer] = changed
        except (MessengerError, TimeoutError):
            pass  # offline: what is held is shown all the same
        await self._show_key_change()

    async def _show_key_change(self) -> None:
        """The header line and the transcript line for the open peer, while it lasts."""
        header = self.query_one("#keys", Static)
        changed = self._key_changes.get(self.peer)
        held = self.client.held(self.peer)
        waiting_for_trust = any(h.held_because is HoldReason.KEY_CHANGED for h in held)
        for old in self.query(".keychange"):
            await old.remove()
        if changed is None and not held:
            header.set_class(False, "shown")
            header.update("")
            return
        # Unreadable messages alone are no key change: nothing to compare or trust.
        key_change = changed is not None or waiting_for_trust
        lines = []
        if key_change:
            warning = f"⚠ {self.peer}'s safety number changed"
            if isinstance(changed, DeviceListRefused):
                warning = (
                    f"⚠ {self.peer}'s device list does not verify under their safety number "
                    f"{changed.pinned_fingerprint}"
                )
            elif changed is not None:
                warning += f": was {changed.pinned_fingerprint}, now {changed.offered_fingerprint}"
            lines.append(warning)
        lines += held_notices(held)
        if key_change:
            lines.append(f"Compare it with {self.peer} by another channel, then type /trust NUMBER")
        text = "\n".join(lines)
        header.set_class(True, "shown")
        header.update(text)
        await self.query_one("#messages", VerticalScroll).mount(
            Static(text, markup=False, classes="notice keychange")
        )

    async def _trust(self, number: str) -> None:
        try:
            await self.client.trust(self.peer, number)
        except (MessengerError, ValueError) as error:
            self.notify(str(error), severity="error", timeout=15)
            return
        self._key_changes.pop(self.peer, None)
        await self._show_key_change()
        self.notify(f"trusted {self.peer}'s new safety number")
        self._show_conversations()

    @on(Input.Submitted, "#input")
    async def send_typed(self, submitted: Input.Submitted) -> None:
        text = submitted.value.strip()
        if not text:
            return
        submitted.input.clear()
        submitted.input.remove_class("unsent")
        submitted.input.border_title = None
        if text.startswith("/trust "):
            self.run_worker(self._trust(text.removeprefix("/trust ").strip()), group="send")
            return
        self.run_worker(self._send(text, submitted.value), group="send")

    async def _send(self, text: str, typed: str) -> None:
        # One at a time, so messages enter the outbox in the order they were typed.
        async with self._send_lock:
            try:
                await self.client.send(self.peer, text)
            except (MessengerError, ValueError) as error:
                box = self.query_one("#input", Input)
                if not box.value:
                    box.value = typed  # give the text back, so nothing typed is lost
                box.add_class("unsent")
                box.border_title = "not sent"
                if isinstance(error, KeyChanged):
                    self._key_changes[error.user_id] = error
                    await self._show_key_change()
                else:
                    self.notify(str(error), severity="error", timeout=10)

    # --- drawing ----------------------------------------------------------------------

    async def _show_message(self, message: StoredMessage) -> None:
        key = (message.sender, message.message_id)
        if key in self._views:
            self._views[key].show(message)
            return
        view = MessageView(message)
        self._views[key] = view
        position = (message.sent_at, message.message_id, message.sender)
        index = bisect.bisect(self._order, position)
        self._order.insert(index, position)
        container = self.query_one("#messages", VerticalScroll)
        if index + 1 < len(self._order):
            _, after_id, after_sender = self._order[index + 1]
            await container.mount(view, before=self._views[(after_sender, after_id)])
        else:
            await container.mount(view)
            container.scroll_end(animate=False)

    def _refresh_message(self, sender: str, message_id: str) -> None:
        view = self._views.get((sender, message_id))
        message = self.client.store.get(sender, message_id)
        if view is not None and message is not None:
            view.show(message)

    def _show_presence(self, presence: Presence | None) -> None:
        self.title = f"{self.peer}  {presence_text(presence)}"
        self.query_one("#peer", Static).update(
            f"{self.peer}  {presence_text(presence)}    (you are {self.client.user_id})"
        )

    def _show_status(self, status: ConnectionStatus) -> None:
        banner = self.query_one("#banner", Static)
        text = banner_text(status)
        banner.set_class(text is not None, "shown")
        banner.update(text or "")

    def message_view(self, sender: str, message_id: str) -> MessageView | None:
        """The widget showing one message (tests and embedding apps)."""
        return self._views.get((sender, message_id))


async def run_chat(client: MessengerClient, peer: str) -> int:
    """Run the chat in this terminal until the user quits (then close the client)."""
    # Log lines on stderr would tear the screen: they go to textual's devtools console.
    logging.basicConfig(level=logging.INFO, handlers=[TextualHandler()], force=True)
    async with client:
        app = ChatApp(client, peer)
        await app.run_async()
    return 0
