"""What users feel of a cell, measured (issue 21; docs/availability.md "The probe").

    user = ProbeUser.from_secret(secret, user_id="probe-c1-eu-west-1")
    outcome = probe_cell("wss://abc.execute-api.us-east-1.amazonaws.com/prod", user)
    cloudwatch.put_metric_data(**probe_metric_data(outcome, cell="c1", vantage="eu-west-1"))

A probe is the path every user takes: a signed v1.2 handshake (docs/protocol.md §1, through
the authorizer and `$connect`), then a `ping` and its `pong` (§2, answered by the API's MOCK
route). It connects as the cell's own probe user, registered by its first handshake with
keys derived from a secret, so it writes nothing of any user's: only its own connection
record and nonce, as any client's handshake does. An unauthenticated handshake (a 401/403)
would prove the authorizer answers, but not that `$connect` can record a connection nor that
frames flow, which is what users need.

The WebSocket client is the standard library's sockets: the probe's asset carries no
WebSocket package, and one text frame each way is all it needs (RFC 6455). Nothing here
calls AWS: the caller publishes `probe_metric_data`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nacl.signing import SigningKey

from messenger_protocol.connect import canonical_endpoint, signed_connect_query, with_query
from messenger_protocol.encoding import b64url_encode

# The probe's own CloudWatch namespace: its role may write this one only (infra).
PROBE_NAMESPACE = "Messenger/Probe"
SUCCESS_METRIC = "ProbeSuccess"
ROUND_TRIP_METRIC = "ProbeRoundTripMs"
CELL_DIMENSION = "Cell"
VANTAGE_DIMENSION = "Vantage"

# Within a minute's schedule, and well inside the function's timeout.
DEFAULT_TIMEOUT_S = 10.0

_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OPCODE_TEXT, _OPCODE_CLOSE, _OPCODE_PING = 0x1, 0x8, 0x9
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


class ProbeFailed(Exception):
    """The cell did not do what a user needs (the message says which step)."""


@dataclass(frozen=True)
class ProbeUser:
    """The cell's probe user: its id and the signing key its secret derives."""

    user_id: str
    signing_key: SigningKey

    @classmethod
    def from_secret(cls, secret: str, user_id: str) -> ProbeUser:
        """Same secret, same keys: the first handshake registers them, the next match."""
        seed = hashlib.sha256(f"messenger-probe\n{secret}".encode()).digest()
        return cls(user_id, SigningKey(seed))

    def connect_url(self, url: str, now: float) -> str:
        """`url` with a fresh v1.2 signed query, keys included (they register once)."""
        keys = (
            b64url_encode(bytes(self.signing_key.verify_key)),
            b64url_encode(bytes(self.signing_key.to_curve25519_private_key().public_key)),
        )
        query = signed_connect_query(
            self.signing_key, self.user_id, now=now, keys=keys, aud=canonical_endpoint(url)
        )
        return with_query(url, query)


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe: `ok` with the round trip (handshake + ping → pong), or why it failed."""

    ok: bool
    round_trip_ms: float | None
    reason: str

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "roundTripMs": self.round_trip_ms, "reason": self.reason}


def probe_cell(
    url: str,
    user: ProbeUser,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeOutcome:
    """Connect to `url` as `user`, send `ping`, wait for `pong`; never raises for the cell's
    failures (they are the measurement)."""
    started = clock()
    try:
        websocket_ping(user.connect_url(url, time.time()), timeout_s)
    except (ProbeFailed, OSError) as failure:
        return ProbeOutcome(False, None, f"{type(failure).__name__}: {failure}")
    return ProbeOutcome(True, round((clock() - started) * 1000, 1), "pong")


def probe_metric_data(outcome: ProbeOutcome, *, cell: str, vantage: str) -> dict[str, Any]:
    """The PutMetricData arguments: success 0/1 always, the round trip when it succeeded."""
    dimensions = [
        {"Name": CELL_DIMENSION, "Value": cell},
        {"Name": VANTAGE_DIMENSION, "Value": vantage},
    ]
    data: list[dict[str, Any]] = [
        {"MetricName": SUCCESS_METRIC, "Dimensions": dimensions, "Value": int(outcome.ok)}
    ]
    if outcome.round_trip_ms is not None:
        data.append(
            {
                "MetricName": ROUND_TRIP_METRIC,
                "Dimensions": dimensions,
                "Value": outcome.round_trip_ms,
                "Unit": "Milliseconds",
            }
        )
    return {"Namespace": PROBE_NAMESPACE, "MetricData": data}


# --- one ping over a WebSocket (RFC 6455), client side --------------------------------------


def websocket_ping(url: str, timeout_s: float) -> None:
    """Open `url`, send `{"action": "ping"}`, return at the `pong`; ProbeFailed otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ProbeFailed(f"not a ws:// or wss:// URL: {parts.scheme}://{parts.hostname}")
    deadline = time.monotonic() + timeout_s
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    raw = socket.create_connection((parts.hostname, port), timeout=timeout_s)
    try:
        sock: socket.socket = raw
        if parts.scheme == "wss":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
        reader = _Reader(sock, deadline)
        _handshake(sock, reader, parts.netloc, parts.path or "/", parts.query)
        sock.sendall(_client_frame(_OPCODE_TEXT, json.dumps({"action": "ping"}).encode()))
        while True:
            opcode, payload = reader.frame()
            if opcode == _OPCODE_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise ProbeFailed(f"closed by the server ({code}) before the pong")
            if opcode == _OPCODE_PING:
                sock.sendall(_client_frame(0xA, payload))
            elif opcode == _OPCODE_TEXT and _is_pong(payload):
                break
        # A polite close; the measurement is done whatever happens now.
        with contextlib.suppress(OSError):
            sock.sendall(_client_frame(_OPCODE_CLOSE, struct.pack("!H", 1000)))
    finally:
        raw.close()


def _is_pong(payload: bytes) -> bool:
    try:
        frame = json.loads(payload)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "pong"


def _handshake(sock: socket.socket, reader: _Reader, host: str, path: str, query: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    target = f"{path}?{query}" if query else path
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = reader.until(b"\r\n\r\n").decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or fields[1] != "101":
        raise ProbeFailed(f"handshake refused: {status_line.strip()}")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    accept = base64.b64encode(hashlib.sha1((key + _WEBSOCKET_GUID).encode()).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise ProbeFailed("handshake answered without the right Sec-WebSocket-Accept")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked frame (clients always mask)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class _Reader:
    """Buffered reads from the socket, each bounded by the probe's one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""

    def _fill(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ProbeFailed("no answer before the deadline")
        self._sock.settimeout(left)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise ProbeFailed("no answer before the deadline") from None
        if not chunk:
            raise ProbeFailed("connection closed by the server")
        self._buffer += chunk

    def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    def until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            if len(self._buffer) > 65536:
                raise ProbeFailed("handshake answer too long")
            self._fill()
        taken, _, self._buffer = self._buffer.partition(marker)
        return taken

    def frame(self) -> tuple[int, bytes]:
        """One whole message (fragments joined): its opcode and payload."""
        opcode, payload = 0, b""
        while True:
            first, second = self.exactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self.exactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self.exactly(8))[0]
            mask = self.exactly(4) if second & 0x80 else b""
            data = self.exactly(size)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = opcode or first & 0x0F
            payload += data
            if first & 0x80:
                return opcode, payload
