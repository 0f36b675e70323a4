"""The one protocol client the benchmarks share: the users they play, and their frames.

Nothing of the protocol is written here; each piece comes from its one home: frames
from messenger_protocol.frames (one writer, one reader), the signed connect query from
messenger_protocol.connect, NaCl sealing and opening from the SDK (messenger_client.crypto),
and API Gateway's own error frames from the client rules (messenger_protocol.client_rules).
What is here is how benchmarks hold them: a `BenchUser` with its keys, a socket opened
as API Gateway clients open one, and server frames read into types.

The SDK's `MessengerClient` is not the client of a benchmark: it keeps a history on
disk, sends one message at a time through its outbox and owns its connection, while a
benchmark times each frame, holds a thousand bare connections at once and decides
itself when to resend, ack and sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from messenger_client import crypto
from messenger_client.keystore import Identity, PeerKeys
from messenger_protocol.client_rules import GATEWAY_ERROR_MESSAGES
from messenger_protocol.connect import canonical_endpoint, signed_connect_query, with_query
from messenger_protocol.errors import BadRequest
from messenger_protocol.frames import ServerFrame, read_server_frame

__all__ = [
    "BenchUser",
    "GatewayError",
    "Received",
    "Unreadable",
    "open_socket",
    "read_frame",
]


@dataclass(frozen=True)
class BenchUser:
    """A user a benchmark plays: the SDK's identity, and what it signs and seals with it."""

    identity: Identity

    @classmethod
    def generate(cls, user_id: str) -> BenchUser:
        """A new user with fresh keys (registered by its first connection)."""
        return cls(Identity.generate(user_id))

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    @cached_property
    def public_keys(self) -> PeerKeys:
        """The keys peers seal for, as the protocol carries them (base64url)."""
        return self.identity.public_keys

    def connect_query(
        self,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        with_keys: bool = True,
        aud: str | None = None,
    ) -> dict[str, str]:
        """A freshly signed connect query (docs/protocol.md §1); the keys register the user.
        With `aud` (the endpoint), in the v1.2 form bound to it."""
        keys = (self.public_keys.sign_key, self.public_keys.box_key) if with_keys else None
        now = time.time() if ts is None else ts
        return signed_connect_query(
            self.identity.signing_key, self.user_id, now=now, nonce=nonce, keys=keys, aud=aud
        )

    def signed_url(self, ws_url: str, *, with_keys: bool = True) -> str:
        """The stage URL with a fresh connect query bound to it (v1.2): good for one
        handshake, at that URL only."""
        aud = canonical_endpoint(ws_url)
        return with_query(ws_url, self.connect_query(with_keys=with_keys, aud=aud))

    def encrypt_for(self, peer: BenchUser, text: str) -> tuple[str, str]:
        """(body, nonce), base64url: `text` sealed for the peer as docs/protocol.md §5 has it."""
        return crypto.seal(self.identity, peer.public_keys, crypto.encode_plaintext(text))

    def message_frame(self, peer: BenchUser, message_id: str, text: str, sent_at: int) -> str:
        """The sendMessage frame carrying `text` to the peer, sealed once: a resend is
        this very text."""
        return crypto.send_message_frame(self.identity, peer.public_keys, message_id, text, sent_at)

    def decrypt_from(self, peer: BenchUser, body: str, nonce: str) -> str:
        """The text of a body the peer sealed for this user (UnreadableMessage if not)."""
        plaintext = crypto.open_sealed(self.identity, peer.public_keys, body, nonce)
        return crypto.decode_plaintext(plaintext)


async def open_socket(url: str, **options: Any) -> ClientConnection:
    """A bare WebSocket opened as API Gateway's clients open one."""
    # No proxy (loopback), no permessage-deflate (API Gateway negotiates none), frames as
    # large as the gateway may send, and no WebSocket-level pings: API Gateway's idle
    # timer ignores them (the protocol's `ping` frame is what keeps a connection open).
    return await connect(
        url, proxy=None, compression=None, max_size=None, ping_interval=None, **options
    )


@dataclass(frozen=True)
class GatewayError:
    """API Gateway's own answer (no `type`) when a function raised or took too long."""

    message: str


@dataclass(frozen=True)
class Unreadable:
    """A frame that is neither the protocol's nor API Gateway's, and why."""

    document: Any
    reason: str


Received = ServerFrame | GatewayError | Unreadable


def read_frame(document: Any) -> Received:
    """A decoded frame from the server, as its type (Unreadable rather than an exception)."""
    if isinstance(document, dict) and "type" not in document:
        message = document.get("message")
        if message in GATEWAY_ERROR_MESSAGES:
            return GatewayError(str(message))
    try:
        return read_server_frame(document)
    except BadRequest as problem:
        return Unreadable(document, str(problem))
