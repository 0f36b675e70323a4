"""The mesh between cells (docs/scale.md "The mesh"): how a cell finds a peer's Relay and
proves, on every call, that it is the cell it says it is.

Both halves live here because two packages meet on them: the directory publisher writes
each cell side's record (`messenger_directory.store.write_relay_record`), the cells' own
functions read it (`messenger.dal.relay_records`) and sign and verify the calls
(`messenger.transport.relay_records`).

- **The record.** Each side of a cell (its primary, and its standby if it has one) has one
  record in the directory's bucket, at `relays/<cell>/<side>.json`:
  `{"cell": "c1", "side": "primary", "function": <the Relay's ARN>, "key": <base64url>}`,
  `key` being the side's Ed25519 relay public key. Nothing about peers is in a cell's own
  configuration: a cell reads the record of a peer when it first calls it, or is called by
  it, and keeps it a short while.
- **The key.** A side's relay signing key is a 32-byte seed kept in that side's own Users
  table, which only the cell's functions may read (`messenger.dal.server_keys`, under
  `RELAY_KEY_NAMES[side]`): the private half never leaves the cell. The side's record writer
  makes it at deploy and publishes its public half.
- **The call.** Every Relay request carries `from`, `to`, `at` (ms), `id` (random) and
  `sig`: an Ed25519 signature by the caller's relay key over the 64-byte SHA-512 digest
  of `relay_signing_text`, which covers every other field of the request. The called
  Relay checks it against the caller's published keys before it reads anything else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger_protocol.encoding import b64url_encode, decoded_length, is_base64url
from messenger_protocol.limits import KEY_BYTES

if TYPE_CHECKING:
    from nacl.signing import SigningKey

RELAY_RECORD_PREFIX = "relays/"
RELAY_SIGNING_PREFIX = "messenger-relay"
# The sides a record may be of (messenger.config's PRIMARY_SIDE and STANDBY_SIDE).
RECORD_SIDES = ("primary", "standby")
# The name of each side's seed among the server's keys (its Users table; a standby's
# replica holds the primary's too, so each side has a name of its own).
RELAY_KEY_NAMES = {side: f"relay-{side}" for side in RECORD_SIDES}
# A call signed more than this long before (or after) the called cell's clock is refused:
# long enough for clock skew between regions, short enough that a captured call is soon
# useless (and every operation is idempotent, so a replay inside it changes nothing).
RELAY_CALL_WINDOW_MS = 60_000
# The longest Relay ARN (or name) a record may hold.
MAX_FUNCTION_CHARS = 256


class InvalidRelayRecord(ValueError):
    """A record that is not a side's Relay and relay key."""


def relay_record_key(cell_id: str, side: str) -> str:
    """Where a cell side's record is in the directory's bucket."""
    return f"{RELAY_RECORD_PREFIX}{cell_id}/{side}.json"


@dataclass(frozen=True)
class RelayRecord:
    """One side of a cell, as its peers know it: its Relay and its relay public key."""

    cell_id: str
    side: str
    function: str  # the Relay's ARN (or, locally, its name), as Lambda's Invoke takes it
    key: str  # the side's Ed25519 relay public key, base64url

    def __post_init__(self) -> None:
        if self.side not in RECORD_SIDES:
            raise InvalidRelayRecord(f"side must be one of {RECORD_SIDES}, not {self.side!r}")
        if not 1 <= len(self.function) <= MAX_FUNCTION_CHARS or not self.function.isprintable():
            raise InvalidRelayRecord("function must name a Relay")
        if not is_base64url(self.key) or decoded_length(self.key) != KEY_BYTES:
            raise InvalidRelayRecord(f"key must be {KEY_BYTES} bytes of base64url")

    def to_wire(self) -> dict[str, str]:
        return {"cell": self.cell_id, "side": self.side, "function": self.function, "key": self.key}

    @classmethod
    def parse(cls, document: Any) -> RelayRecord:
        if not isinstance(document, dict) or not all(
            isinstance(document.get(name), str) for name in ("cell", "side", "function", "key")
        ):
            raise InvalidRelayRecord("a relay record names its cell, side, function and key")
        return cls(document["cell"], document["side"], document["function"], document["key"])


def relay_signing_key(seed: bytes) -> SigningKey:
    """A side's relay signing key, from its 32-byte seed."""
    from nacl.signing import SigningKey

    return SigningKey(seed)


def relay_public_key(signing_key: SigningKey) -> str:
    """What a side's record publishes of its key."""
    return b64url_encode(bytes(signing_key.verify_key))


def relay_signing_text(request: Mapping[str, Any], signature_field: str) -> bytes:
    """What a Relay request's signature is over: the request without its signature, as
    JSON with sorted keys and no spaces, after "messenger-relay\\n". The called cell parses
    the JSON it received and builds the same text from the result."""
    unsigned = {name: value for name, value in request.items() if name != signature_field}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{RELAY_SIGNING_PREFIX}\n{canonical}".encode()


def relay_digest(request: Mapping[str, Any], signature_field: str) -> bytes:
    """The 64-byte SHA-512 digest of the signing text: what the relay key signs."""
    return hashlib.sha512(relay_signing_text(request, signature_field)).digest()
