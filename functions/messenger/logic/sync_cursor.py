"""Sync cursors: where the next page of a round starts, bound to the user it was given to.

A cursor is base64url(version | seq | tag): seq is the queue position the page ended at
(26 ASCII bytes, see dal/queue.py) and tag the first 16 bytes of HMAC-SHA256 under the
server's own key over the user id and the seq. So a cursor is opaque to clients, a
garbled or forged one is refused (BAD_REQUEST) before anything is read, and a cursor
given to one user is refused when another presents it. Even a cursor that verified
could only ever position a page inside the caller's own queue: every read is keyed by
the caller.
"""

from __future__ import annotations

import hashlib
import hmac

from messenger.dal.queue import is_seq
from messenger.dal.server_keys import ServerKeys
from messenger.errors import BadRequest
from messenger_protocol.encoding import b64url_decode, b64url_encode

KEY_NAME = "sync-cursor"
VERSION = 1
SEQ_BYTES = 26
TAG_BYTES = 16
_REFUSAL = "after: not a cursor this server gave you; sync without `after` to start over"


class SyncCursors:
    """Issues and reads cursors; the key is read once per container and kept."""

    def __init__(self, keys: ServerKeys) -> None:
        self._keys = keys
        self._key: bytes | None = None

    def issue(self, owner: str, seq: str) -> str:
        """The cursor of the page that ended at `seq`, for `owner` only."""
        if self._key is None:
            self._key = self._keys.find_or_make(KEY_NAME)
        body = bytes([VERSION]) + seq.encode("ascii")
        return b64url_encode(body + _tag(self._key, owner, body))

    def position(self, owner: str, cursor: str) -> str:
        """The seq a cursor given to `owner` points after; BadRequest for anything else.

        Refusing reads nothing but the key, and writes nothing: a server that never
        issued a cursor has no key to check one against, and refuses them all.
        """
        try:
            raw = b64url_decode(cursor)
        except ValueError:
            raise BadRequest(_REFUSAL) from None
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if len(raw) != 1 + SEQ_BYTES + TAG_BYTES or body[0] != VERSION:
            raise BadRequest(_REFUSAL)
        if self._key is None:
            self._key = self._keys.find(KEY_NAME)
        if self._key is None or not hmac.compare_digest(tag, _tag(self._key, owner, body)):
            raise BadRequest(_REFUSAL)
        seq = body[1:].decode("ascii", errors="replace")
        if not is_seq(seq):
            raise BadRequest(_REFUSAL)
        return seq


def _tag(key: bytes, owner: str, body: bytes) -> bytes:
    message = b"messenger-sync-cursor\n" + owner.encode() + b"\n" + body
    return hmac.new(key, message, hashlib.sha256).digest()[:TAG_BYTES]
