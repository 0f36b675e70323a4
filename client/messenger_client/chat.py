"""`messenger chat PEER`: an interactive terminal chat (textual) on top of the SDK.

What the screen shows, kept live by the client's events:

- the conversation in order (sentAt, then messageId), ours with a mark: … pending,
  ✓ sent (the server stored it), ✓✓ delivered (their device stored it), ✓✓ seen;
- the peer's presence in the title: online, or when last seen;
- a banner while offline, saying that (and when) we reconnect.

Messages from the peer are marked seen while the chat is open: it is on the screen.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from datetime import datetime

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.logging import TextualHandler
from textual.widgets import Footer, Input, Static

from messenger_client.client import MessengerClient
from messenger_client.connection import ConnectionState, ConnectionStatus
from messenger_client.errors import MessengerError
from messenger_client.events import (
    ConnectionChanged,
    MessageAdded,
    MessageRejected,
    Presence,
    PresenceChanged,
    SendFailed,
    StatusChanged,
)
from messenger_client.store import STATUS_MARKS, MessageStatus, StoredMessage

log = logging.getLogger(__name__)

HISTORY_SHOWN = 500


def message_line(message: StoredMessage) -> str:
    """How one message reads on screen (plain text: no markup from what people type)."""
    stamp = datetime.fromtimestamp(message.sent_at / 1000).strftime("%H:%M")
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
    if presence.last_seen is None:
        return "○ offline"
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
    #banner { background: $error; color: $text; padding: 0 1; display: none; }
    #banner.shown { display: block; }
    #messages { height: 1fr; padding: 0 1; }
    .outgoing { color: $text; }
    .incoming { color: $accent; }
    .notice { color: $warning; }
    """
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", priority=True)]

    def __init__(self, client: MessengerClient, peer: str) -> None:
        super().__init__()
        self.client = client
        self.peer = peer
        self._views: dict[tuple[str, str], MessageView] = {}
        self._order: list[tuple[int, str, str]] = []  # (sent_at, message_id, sender)
        self._send_lock = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield Static(id="peer", markup=False)
        yield Static(id="banner", markup=False)
        yield VerticalScroll(id="messages")
        yield Input(placeholder=f"Message {self.peer} (Enter sends, Ctrl+C quits)", id="input")
        yield Footer()

    async def on_mount(self) -> None:
        self._show_presence(self.client.presence(self.peer))
        self._show_status(self.client.status)
        self.run_worker(self._follow(), exclusive=True, group="events")
        for message in self.client.history(self.peer, HISTORY_SHOWN):
            await self._show_message(message)
        self.run_worker(self._start_conversation(), group="setup")
        self.query_one("#input", Input).focus()

    async def _start_conversation(self) -> None:
        try:
            await self.client.mark_seen(self.peer)
            presence = await self.client.get_presence([self.peer], subscribe=True)
        except (MessengerError, TimeoutError):
            return  # offline: subscriptions are renewed once the client reconnects
        if presence:
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
        elif isinstance(event, MessageRejected) and event.rejection.sender == self.peer:
            notice = Static(
                f"⚠ a message from {self.peer} could not be read: {event.rejection.reason}",
                markup=False,
                classes="notice",
            )
            await self.query_one("#messages", VerticalScroll).mount(notice)

    @on(Input.Submitted, "#input")
    async def send_typed(self, submitted: Input.Submitted) -> None:
        text = submitted.value.strip()
        if not text:
            return
        submitted.input.clear()
        self.run_worker(self._send(text, submitted.value), group="send")

    async def _send(self, text: str, typed: str) -> None:
        # One at a time, so messages enter the outbox in the order they were typed.
        async with self._send_lock:
            try:
                await self.client.send(self.peer, text)
            except (MessengerError, ValueError) as error:
                self.notify(str(error), severity="error", timeout=10)
                box = self.query_one("#input", Input)
                if not box.value:
                    box.value = typed  # give the text back, so nothing typed is lost

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
