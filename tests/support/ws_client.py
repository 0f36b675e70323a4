"""A real WebSocket client (the `websockets` library) speaking docs/protocol.md frames.

End-to-end tests, the client SDK's tests and load tests drive the local stack (or a
deployed one) with it:

    client = await connect_as(stack.ws_url, TestUser("alice"))
    pong = await client.request({"action": "ping"})
    message = await client.next_of("message")

Frames that arrive while a test waits for another type are kept, in order, for the
next `next_of` / `next`: a presence frame never gets lost behind an ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConcurrencyError, ConnectionClosed, InvalidStatus

from messenger_protocol.connect import canonical_endpoint, with_query
from tests.support.identities import TestUser
from tests.support.schemas import check_server_frame

DEFAULT_TIMEOUT = 5.0


def signed_url(ws_url: str, user: TestUser, **query_options: Any) -> str:
    """The stage URL with the user's signed connect query (keys included by default),
    bound to that URL (v1.2) unless the options say otherwise (`aud=None`: v1.1)."""
    query_options.setdefault("aud", canonical_endpoint(ws_url.partition("?")[0]))
    return with_query(ws_url, user.connect_query(**query_options))


async def open_socket(url: str, **options: Any) -> ClientConnection:
    """A raw websockets connection the way API Gateway clients open one."""
    # No proxy (localhost), no permessage-deflate (API Gateway negotiates none), and
    # frames as large as the gateway may send. No WebSocket-level keepalive pings by
    # default: the protocol keeps a connection alive with its own `ping` frame, and on a
    # loaded 2-core machine a flood test can keep the emulator's loop busy longer than
    # the library's 20 s pong timeout (closing 1011 for no fault of the server's).
    options.setdefault("ping_interval", None)
    return await connect(url, proxy=None, compression=None, max_size=None, **options)


async def handshake_status(url: str) -> int:
    """The HTTP status of a connect attempt: 101 when it opened (then closed again)."""
    try:
        socket = await open_socket(url)
    except InvalidStatus as refused:
        return refused.response.status_code
    await socket.close()
    return 101


class WsClient:
    """One user's connection, sending and receiving JSON frames."""

    def __init__(
        self, user: TestUser, socket: ClientConnection, *, check_frames: bool = True
    ) -> None:
        self.user = user
        self.socket = socket
        # Frames from the functions must keep docs/asyncapi.yaml; a test that posts frames
        # of its own through @connections turns this off.
        self.check_frames = check_frames
        self.connection_id: str | None = None  # set by those who can see the server side
        self._inbox: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.socket.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def _read(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        document = json.loads(raw)
        assert isinstance(document, dict), f"not a JSON object: {raw!r}"
        if self.check_frames:
            check_server_frame(document)
        return document

    async def next(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next frame, whatever its type."""
        if self._inbox:
            return self._inbox.pop(0)
        return await self._read(timeout)

    async def next_of(self, frame_type: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next frame of a type; frames of other types stay queued for later."""
        for index, frame in enumerate(self._inbox):
            if frame.get("type") == frame_type:
                return self._inbox.pop(index)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {frame_type!r} frame; kept: {self._inbox}")
            frame = await self._read(left)
            if frame.get("type") == frame_type:
                return frame
            self._inbox.append(frame)

    async def request(
        self,
        frame: dict[str, Any] | str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Send a frame and return the next frame that arrives."""
        await self.send(frame)
        return await self.next(timeout)

    async def nothing_more(self, within: float = 0.3) -> None:
        """Assert that no frame arrives for `within` seconds."""
        assert not self._inbox, f"unexpected frames: {self._inbox}"
        try:
            frame = await asyncio.wait_for(self.socket.recv(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int | None, str]:
        """Wait until the server closes the connection; its close code and reason."""
        await asyncio.wait_for(self.socket.wait_closed(), timeout)
        received = self.socket.protocol.close_rcvd
        return (received.code, received.reason) if received else (None, "")

    async def close(self) -> None:
        """Close the connection, reading (and dropping) what the server still sends until
        its close frame arrives. websockets stops reading the network while 16 frames wait
        unread, so a client that never read its receipts would not see that close frame
        and would wait out the closing handshake's timeout (10 s) instead."""
        discard = asyncio.create_task(self._drop_until_closed())
        await self.socket.close()
        await discard

    async def _drop_until_closed(self) -> None:
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                await self.socket.recv()


async def connect_as(
    ws_url: str, user: TestUser, *, check_frames: bool = True, **query_options: Any
) -> WsClient:
    """Connect as a user with a freshly signed query; fails if the handshake is refused."""
    socket = await open_socket(signed_url(ws_url, user, **query_options))
    return WsClient(user, socket, check_frames=check_frames)


def message_frame(
    sender: TestUser, recipient: TestUser, text: str, message_id: str, sent_at: int = 1
) -> dict[str, Any]:
    """A sendMessage frame with a real NaCl Box body (docs/protocol.md §5)."""
    body, nonce = sender.encrypt_for(recipient, text)
    return {
        "action": "sendMessage",
        "messageId": message_id,
        "to": recipient.user_id,
        "body": body,
        "nonce": nonce,
        "sentAt": sent_at,
    }
