"""API Gateway's per-frame limit, which aiohttp cannot see.

aiohttp reassembles fragmented messages before handing them over, so it can limit a
message (128 KB) but not each frame of it (32 KB). `FrameSizeGuard` sits between
the socket transport and aiohttp's protocol once the connection is upgraded, reads
only the frame headers of the byte stream (RFC 6455 §5.2), and passes every byte on
unchanged. The WebSocket loop checks `oversized` and closes with 1009.
"""

from __future__ import annotations

import asyncio

_DATA_OPCODES = {0x0, 0x1, 0x2}  # continuation, text, binary


def _header_length(header: bytearray) -> int | None:
    """The full header length once its first two bytes are known."""
    if len(header) < 2:
        return None
    length_flag = header[1] & 0x7F
    extended = 2 if length_flag == 126 else 8 if length_flag == 127 else 0
    mask = 4 if header[1] & 0x80 else 0
    return 2 + extended + mask


def _payload_length(header: bytearray) -> int:
    length_flag = header[1] & 0x7F
    if length_flag == 126:
        return int.from_bytes(header[2:4], "big")
    if length_flag == 127:
        return int.from_bytes(header[2:10], "big")
    return length_flag


class FrameSizeGuard(asyncio.Protocol):
    """A transparent protocol wrapper that notices data frames over `max_frame_bytes`."""

    def __init__(self, inner: asyncio.BaseProtocol, max_frame_bytes: int) -> None:
        self._inner = inner
        self._max_frame_bytes = max_frame_bytes
        self._header = bytearray()
        self._payload_left = 0
        self.oversized = False

    def data_received(self, data: bytes) -> None:
        self._scan(data)
        self._inner.data_received(data)  # type: ignore[attr-defined]

    def _scan(self, data: bytes) -> None:
        position = 0
        while position < len(data):
            if self._payload_left:
                step = min(self._payload_left, len(data) - position)
                self._payload_left -= step
                position += step
                continue
            # Headers are at most 14 bytes: reading them byte by byte costs nothing.
            self._header.append(data[position])
            position += 1
            needed = _header_length(self._header)
            if needed is None or len(self._header) < needed:
                continue
            opcode = self._header[0] & 0x0F
            length = _payload_length(self._header)
            if opcode in _DATA_OPCODES and length > self._max_frame_bytes:
                self.oversized = True
            self._payload_left = length
            self._header.clear()

    # Everything else goes straight to aiohttp.
    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def guard_frames(transport: asyncio.BaseTransport, max_frame_bytes: int) -> FrameSizeGuard:
    """Put a FrameSizeGuard in front of the transport's current protocol."""
    guard = FrameSizeGuard(transport.get_protocol(), max_frame_bytes)
    transport.set_protocol(guard)
    return guard
