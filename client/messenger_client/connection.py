"""The WebSocket's life: connect, keep alive, reconnect, hand every frame to the client.

API Gateway closes a connection after 10 idle minutes and after 2 hours whatever
happens, and networks drop. So a `Connection` is a loop that never gives up until
stopped: it opens a socket with a freshly signed URL, pings when it has been quiet,
replaces the socket before the 2-hour limit (make before break: the new socket opens
before the old one closes, so watchers see no offline blip), and after any loss
reconnects with a jittered exponential backoff. Each open socket is a `Session`; the
client runs `on_open` (sync, presence subscriptions, outbox) for every new one.

Where each attempt goes is the `Locator`'s to say (messenger_client.directory): a
server's URL, or the user's home cell from the directory. A handshake the server
refuses (HTTP 401 or 403: our identity or our clock, or a cell that is not our home)
ends the loop unless the locator has somewhere new to try (a newer directory): asking
again would be refused again. One that fails because of the server (a 5xx, a timeout)
is retried with the same backoff as a lost connection (docs/protocol.md §1). A
connection the server closed after `REPLACED` (docs/protocol.md §3 Closing: a fifth
connection of this device took its place) is not opened again until `start` is called
again: reconnecting would replace another connection of the device, a loop. Nor is one
closed after `DEVICE_REMOVED` (§8: device 1 removed this device; its handshakes are
refused from then on): it stops at once and says why. One closed
after `TOO_MANY_REFUSED` (§3) reconnects on its own, but only after a pause as long as
the server's window of refused frames: back at once, it would be closed again.

The timings' defaults, the backoff and which handshake refusals are final are the
client rules' (`messenger_protocol.client_rules`), which the JavaScript SDK shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from messenger_client.directory import Locator
from messenger_client.errors import HandshakeRefused, NotConnected
from messenger_protocol import client_rules
from messenger_protocol.client_rules import backoff_delay
from messenger_protocol.errors import BadRequest
from messenger_protocol.frames import ClientFrame, Ping, load_json
from messenger_protocol.limits import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES
from messenger_protocol.names import ErrorCode, FrameType

log = logging.getLogger(__name__)

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class ConnectionPolicy:
    """Timings of the connection's life (seconds): the client rules'. Tests shorten them."""

    open_timeout: float = client_rules.OPEN_TIMEOUT_SECONDS
    # Ping when nothing was sent for about this long (jittered, `client_rules.ping_delay`):
    # just under the 10-minute idle limit.
    ping_interval: float = client_rules.PING_INTERVAL_SECONDS
    # A ping unanswered for this long means the network is gone without a close.
    pong_timeout: float = client_rules.PONG_TIMEOUT_SECONDS
    # Make before break: replaced this long after opening, before API Gateway ends it.
    max_age: float = client_rules.MAX_CONNECTION_AGE_SECONDS
    backoff_base: float = client_rules.RECONNECT_BACKOFF_BASE_SECONDS
    backoff_cap: float = client_rules.RECONNECT_BACKOFF_CAP_SECONDS
    # Closed for too many refused frames (§3): this long, then the backoff, before a retry.
    refused_close_pause: float = client_rules.REFUSED_CLOSE_PAUSE_SECONDS
    close_timeout: float = client_rules.CLOSE_TIMEOUT_SECONDS


async def first_of(*futures: asyncio.Future[Any], timeout: float) -> None:
    """Until one of the futures is done or `timeout` seconds passed (none is cancelled)."""
    await asyncio.wait(set(futures), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"  # lost, or the server failed (5xx): reconnecting after `retry_in`
    REFUSED = "refused"  # the server said no (401/403): final, not tried again
    # Closed by the server after REPLACED (§3 Closing): another connection of this device
    # took its place. Not reopened until `start` again; the outbox keeps what it holds.
    REPLACED = "replaced"
    # Closed by the server after DEVICE_REMOVED (§8): this device is no longer in its
    # user's device list, and every handshake would be refused until it is linked again.
    REMOVED = "removed"
    CLOSED = "closed"  # stopped by us


@dataclass(frozen=True)
class ConnectionStatus:
    state: ConnectionState
    retry_in: float | None = None
    error: str | None = None


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class Session:
    """One open socket. `ready` resolves once the client has set it up (`on_open` is
    done); `ended` when it closes or a newer session replaces it."""

    socket: ClientConnection
    number: int
    opened_at: float
    last_sent: float
    # Quiet (nothing sent) for this long: time to ping. Drawn again after every ping.
    ping_after: float
    ping_sent_at: float | None = None
    reader: asyncio.Task[None] | None = None
    # The error code announcing that the server closes this session for good
    # (`client_rules.FINAL_CLOSE_ERRORS`) or for a pause (`PAUSED_CLOSE_ERRORS`), once
    # the server said so.
    close_error: str | None = None
    ready: asyncio.Future[None] = field(default_factory=_new_future)
    ended: asyncio.Future[None] = field(default_factory=_new_future)

    def set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class Connection:
    """A self-healing connection to one server (or one home cell), for one identity."""

    def __init__(
        self,
        locator: Locator,
        signed_url: Callable[[str], str],
        *,
        on_frame: Callable[[dict[str, Any]], None],
        on_open: Callable[[Session], Awaitable[None]],
        on_status: Callable[[ConnectionStatus], None],
        policy: ConnectionPolicy | None = None,
    ) -> None:
        self._locator = locator
        self._signed_url = signed_url
        self._on_frame = on_frame
        self._on_open = on_open
        self._on_status = on_status
        self.policy = policy or ConnectionPolicy()
        self._status = ConnectionStatus(ConnectionState.CLOSED)
        self._session: Session | None = None
        self._sessions_opened = 0
        self._last_error: Exception | None = None
        self._attempts = 0
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        # Set by `start` to reopen a connection that the server closed for good.
        self._resume = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._next_switch_at = 0.0

    # --- what the client sees ----------------------------------------------------------

    @property
    def server_url(self) -> str:
        """Where we connect, for messages: a URL, or which home cell of which directory."""
        return self._locator.description

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def session(self) -> Session | None:
        """The open session, if any."""
        return self._session

    def start(self) -> None:
        """Start connecting in the background (and keep connected until `stop`); again
        after the server closed the connection for good (REPLACED, DEVICE_REMOVED, refused):
        try again."""
        self._resume.set()
        if self._runner is None or self._runner.done():
            self._stopping.clear()
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Close the socket and stop reconnecting."""
        self._stopping.set()
        session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.socket.close(), self.policy.close_timeout)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._set_status(ConnectionStatus(ConnectionState.CLOSED))

    async def wait_open(self, timeout: float) -> Session:
        """The open session; raises HandshakeRefused at once when the server said no,
        NotConnected if no connection opened within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._session is not None:
                return self._session
            if isinstance(self._last_error, HandshakeRefused):
                raise self._last_error
            if self._status.state in _CLOSED_FOR_GOOD.values() and not self._resume.is_set():
                raise NotConnected(f"not connected to {self.server_url}: {self._status.error}")
            left = deadline - loop.time()
            if left <= 0:
                reason = f": {self._last_error}" if self._last_error else ""
                raise NotConnected(f"cannot connect to {self.server_url}{reason}")
            changed = self._changed
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel (a
            # Ctrl-C) that comes as the event is set, and reconnects set it often.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()

    async def wait_session(self) -> Session:
        """The open session, waiting as long as it takes (reconnecting meanwhile)."""
        while self._session is None:
            await self._changed.wait()
        return self._session

    async def send(self, frame: ClientFrame | str) -> Session:
        """Send one frame (or its JSON text) on the open session; NotConnected if none."""
        session = self._session
        if session is None:
            raise NotConnected(f"not connected to {self.server_url}")
        text = frame if isinstance(frame, str) else frame.to_json()
        if len(text.encode()) > MAX_FRAME_BYTES:
            # Callers check their own sizes; this only guards the protocol's promise.
            raise ValueError(f"frame of {len(text.encode())} bytes is over {MAX_FRAME_BYTES}")
        try:
            await session.socket.send(text)
        except ConnectionClosed:
            raise NotConnected(f"connection to {self.server_url} closed") from None
        session.last_sent = asyncio.get_running_loop().time()
        return session

    def drop(self) -> None:
        """Abort the socket at once, as a network failure would; the loop reconnects."""
        session = self._session
        if session is not None:
            session.socket.transport.abort()

    # --- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            pause = 0.0
            self._set_status(ConnectionStatus(ConnectionState.CONNECTING))
            try:
                socket = await self._open_socket(after_failure=self._last_error is not None)
            except HandshakeRefused as refused:
                try:
                    elsewhere = await self._locator.refused()
                except NotConnected as error:
                    self._last_error = error  # the directory cannot say: retried below
                else:
                    if elsewhere:
                        log.info("refused; trying %s with a newer directory", self.server_url)
                        continue
                    # 401/403 is the server's answer about us, not a failure of its own
                    # (that is a 5xx, retried below): asking again would be refused again.
                    self._last_error = refused
                    log.warning("%s; not trying again", refused)
                    self._set_status(ConnectionStatus(ConnectionState.REFUSED, error=str(refused)))
                    return
            except NotConnected as error:
                self._last_error = error
            else:
                self._last_error = None
                self._attempts = 0
                self._install(socket)
                close_error = await self._serve()
                if self._stopping.is_set():
                    break
                if close_error in client_rules.FINAL_CLOSE_ERRORS:
                    await self._wait_for_restart(close_error)
                    continue
                if close_error is not None:
                    # Back at once, it would be refused and closed again: pause first.
                    self._last_error = NotConnected(f"closed by the server: {close_error}")
                    pause = self.policy.refused_close_pause
            delay = pause + backoff_delay(
                self._attempts, self.policy.backoff_base, self.policy.backoff_cap
            )
            self._attempts += 1
            error_text = str(self._last_error) if self._last_error else "connection lost"
            log.info("offline (%s); reconnecting in %.1fs", error_text, delay)
            self._set_status(ConnectionStatus(ConnectionState.OFFLINE, delay, error_text))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _wait_for_restart(self, final_close: str) -> None:
        """The server closed us for good (§3 Closing): stay down until `start` or `stop`."""
        self._resume.clear()
        code = ErrorCode(final_close)
        why = f"{code}: {client_rules.FINAL_CLOSE_REASONS[code]}"
        log.warning("closed by the server (%s); not reconnecting until started again", why)
        self._set_status(ConnectionStatus(_CLOSED_FOR_GOOD[code], error=why))
        resume = asyncio.get_running_loop().create_task(self._resume.wait())
        stopping = asyncio.get_running_loop().create_task(self._stopping.wait())
        try:
            await asyncio.wait({resume, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resume.cancel()
            stopping.cancel()
        self._attempts = 0

    async def _open_socket(self, *, after_failure: bool) -> ClientConnection:
        url = self._signed_url(await self._locator.url(after_failure=after_failure))
        host = urlsplit(url).hostname or ""
        options: dict[str, Any] = {}
        if host in _LOOPBACK_HOSTS:
            options["proxy"] = None  # a local stack is never behind a proxy
        try:
            return await connect(
                url,
                open_timeout=self.policy.open_timeout,
                close_timeout=self.policy.close_timeout,
                # The protocol has its own ping frame, which is what API Gateway's idle
                # timer counts; WebSocket control pings are not needed.
                ping_interval=None,
                # API Gateway negotiates no compression; its largest message is 128 KB.
                compression=None,
                max_size=MAX_MESSAGE_BYTES,
                **options,
            )
        except InvalidURI:
            # Said without the URL: it carries this connect's signature.
            raise NotConnected(f"{self.server_url} is not a ws:// or wss:// URL") from None
        except InvalidStatus as refused:
            status = refused.response.status_code
            if status in client_rules.FINAL_HANDSHAKE_STATUSES:
                raise HandshakeRefused(status, _reason_of(refused.response.body)) from None
            raise NotConnected(f"the server answered HTTP {status}") from None
        except (OSError, TimeoutError, WebSocketException) as error:
            raise NotConnected(str(error) or type(error).__name__) from None

    def _install(self, socket: ClientConnection) -> Session:
        """Make a freshly opened socket the current session and announce it."""
        now = asyncio.get_running_loop().time()
        self._sessions_opened += 1
        session = Session(
            socket,
            self._sessions_opened,
            opened_at=now,
            last_sent=now,
            ping_after=client_rules.ping_delay(self.policy.ping_interval),
        )
        session.reader = asyncio.get_running_loop().create_task(self._read(session))
        previous, self._session = self._session, session
        if previous is not None:
            previous.end()
        self._next_switch_at = now + self.policy.max_age
        self._set_status(ConnectionStatus(ConnectionState.ONLINE))
        self._spawn(self._opened(session))
        return session

    async def _opened(self, session: Session) -> None:
        try:
            await self._on_open(session)
        except NotConnected:
            pass  # lost again already: the next session runs on_open anew
        except Exception:
            log.exception("setting up the new connection failed")
        finally:
            session.set_ready()

    async def _read(self, session: Session) -> None:
        try:
            async for raw in session.socket:
                session.ping_sent_at = None  # anything at all proves the link is alive
                try:
                    document = load_json(raw if isinstance(raw, str) else raw.decode())
                except (BadRequest, UnicodeDecodeError):
                    log.warning("ignored a frame that is not JSON")
                    continue
                if isinstance(document, dict):
                    if document.get("type") == FrameType.ERROR:
                        code = _close_error(document.get("code"))
                        session.close_error = session.close_error or code
                    self._on_frame(document)
                    if _moves_us_on(document):
                        # This side no longer serves us (a fenced stage answers even a
                        # ping so, and cannot close): we close, and reconnect through the
                        # directory (§7), the handshake there refused if it moved.
                        log.info("told MOVED: closing to reconnect where the directory says")
                        await session.socket.close()
                else:
                    log.warning("ignored a frame that is not a JSON object")
        except ConnectionClosed:
            pass
        finally:
            # The close reason says it too where the server could choose it (`messenger local`).
            session.close_error = session.close_error or _close_error(session.socket.close_reason)
            session.end()

    async def _serve(self) -> str | None:
        """Keep the session (and those replacing it) alive until it ends or we stop; the
        error code of a close the server announced (`_close_error`), if so."""
        loop = asyncio.get_running_loop()
        tick = min(client_rules.KEEP_ALIVE_TICK_SECONDS, self.policy.ping_interval / 4)
        stopping = loop.create_task(self._stopping.wait())
        try:
            while True:
                current = self._session
                if current is None or current.reader is None:
                    return None
                await asyncio.wait(
                    {current.reader, stopping}, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping.done():
                    return None
                if current.reader.done():
                    return current.close_error
                await self._keep_alive(current, loop.time())
        finally:
            stopping.cancel()
            if self._session is not None:
                self._session.end()
            self._session = None

    async def _keep_alive(self, session: Session, now: float) -> None:
        if session.ping_sent_at is not None:
            if now - session.ping_sent_at > self.policy.pong_timeout:
                log.info(
                    "no answer to ping for %.0fs: dropping the connection", self.policy.pong_timeout
                )
                session.socket.transport.abort()
            return
        if now - session.last_sent >= session.ping_after:
            with contextlib.suppress(NotConnected):
                await self.send(Ping())
                session.ping_sent_at = now
                session.ping_after = client_rules.ping_delay(self.policy.ping_interval)
        if now >= self._next_switch_at:
            await self._replace(session)

    async def _replace(self, old: Session) -> None:
        """Open a new connection before the old one reaches API Gateway's 2-hour limit."""
        try:
            socket = await self._open_socket(after_failure=False)
        except (HandshakeRefused, NotConnected) as error:
            # Keep the old one while it lasts; try again a little later.
            self._next_switch_at = asyncio.get_running_loop().time() + self.policy.backoff_cap
            log.info("could not open a replacement connection yet: %s", error)
            return
        log.info(
            "replacing a connection %.0fs old", asyncio.get_running_loop().time() - old.opened_at
        )
        self._install(socket)
        # The old socket may still carry frames meant for us: its reader keeps reading
        # them until the close handshake is done.
        self._spawn(old.socket.close())

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _set_status(self, status: ConnectionStatus) -> None:
        if status == self._status:
            return
        self._status = status
        self._changed.set()
        self._changed = asyncio.Event()
        self._on_status(status)


# The state a connection the server closed for good (FINAL_CLOSE_ERRORS) stays in.
_CLOSED_FOR_GOOD: dict[ErrorCode, ConnectionState] = {
    ErrorCode.REPLACED: ConnectionState.REPLACED,
    ErrorCode.DEVICE_REMOVED: ConnectionState.REMOVED,
}


def _moves_us_on(document: dict[str, Any]) -> bool:
    """An `error` after which we close and reconnect (client_rules.MOVE_ON_ERRORS)."""
    return (
        document.get("type") == FrameType.ERROR
        and document.get("code") in client_rules.MOVE_ON_ERRORS
    )


def _close_error(code: object) -> str | None:
    """`code` if it announces a close after which we do not reconnect at once (§3
    Closing): for good (REPLACED, DEVICE_REMOVED) or after a pause (TOO_MANY_REFUSED);
    else None."""
    announced = client_rules.FINAL_CLOSE_ERRORS | client_rules.PAUSED_CLOSE_ERRORS
    return code if isinstance(code, str) and code in announced else None


def _reason_of(body: bytes | bytearray | None) -> str | None:
    """The reason a refused handshake's body gives in words (`messenger local` gives one;
    API Gateway's body is a bare "Forbidden"), else None."""
    try:
        document = json.loads(body or b"")
    except ValueError:
        return None
    reason = document.get("reason") if isinstance(document, dict) else None
    return reason if isinstance(reason, str) and reason else None
