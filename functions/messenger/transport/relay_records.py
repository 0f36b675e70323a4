"""What travels between cells: the Relay's requests and answers (docs/scale.md).

A request is a JSON object `{"op": <RelayOperation>, "from": <calling cell>, "to": <called
cell>, "at": <ms>, "id": <random>, "sig": <signature>, ...}` whose other fields are one of
the records below, read by the peer with the protocol's own field rules, like frames. `sig`
is the calling side's relay key's over everything else (messenger_protocol.mesh). Its answer
is `{"ok": <value>}` or `{"error": {"code", "message"}}`.
The caller's side is logic/peers.py over transport/relay.py; the answering side is
logic/relay.py behind handlers/relay.py. Each shape is spelled here only.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from messenger_protocol.cells import is_cell_id
from messenger_protocol.encoding import b64url_encode, decoded_length, is_base64url
from messenger_protocol.errors import BadRequest
from messenger_protocol.fields import (
    DEVICE_ID,
    MESSAGE_ID,
    USER_ID,
    Choice,
    Field,
    Flag,
    Integer,
    Listing,
    One,
    Records,
    Rule,
    Schema,
    Text,
    wire,
)
from messenger_protocol.frames import PresenceEntry, Record, SendMessage
from messenger_protocol.limits import (
    MAX_IDS_PER_FRAME,
    MAX_SENT_AT,
    PRIMARY_DEVICE_ID,
    SIGNATURE_BYTES,
)
from messenger_protocol.mesh import relay_digest
from messenger_protocol.names import ReceiptStatus, RelayOperation

if TYPE_CHECKING:
    from nacl.signing import SigningKey

# Watchers named in one presenceChanged: ~66 KB of ids at most, well inside the 256 KB an
# asynchronous invoke may carry.
MAX_WATCHERS_PER_CHANGE = 1000

# A registration's source as counters keep it: a digest of the address, never the address.
SOURCE_DIGEST_PATTERN = r"^[0-9a-f]{32}$"
_SOURCE_DIGEST = re.compile(SOURCE_DIGEST_PATTERN)
SOURCE_DIGEST = Rule(
    lambda value: isinstance(value, str) and _SOURCE_DIGEST.fullmatch(value) is not None,
    "32 lowercase hex digits",
    {"type": "string", "pattern": SOURCE_DIGEST_PATTERN},
)
# The connection attempt a registration rides (API Gateway's connectionId, or 32 hex digits).
MAX_ATTEMPT_CHARS = 128

OPERATION = "op"
CALLER = "from"
TARGET = "to"
SIGNED_AT = "at"
CALL_ID = "id"
SIGNATURE = "sig"
ENVELOPE = (OPERATION, CALLER, TARGET, SIGNED_AT, CALL_ID, SIGNATURE)
CALL_ID_BYTES = 16
ANSWER = "ok"
REFUSAL = "error"


# --- the envelope ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RelayRequest:
    """A request as the asked cell reads it: which operation, from which cell to which,
    when and how it was signed, and the whole object (the operation's record reads its own
    fields from it). Nothing in it is believed before `messenger.logic.relay_callers`
    checked the signature."""

    operation: RelayOperation
    caller: str  # the calling cell, as the request claims it
    body: Mapping[str, Any]
    target: str = ""  # the cell the caller meant to call
    signed_at: int = 0  # ms, the caller's clock
    signature: str = ""

    def digest(self) -> bytes:
        """What `signature` must be a signature of (messenger_protocol.mesh)."""
        return relay_digest(self.body, SIGNATURE)


def request_payload(
    operation: RelayOperation,
    caller: str,
    target: str,
    fields: Mapping[str, Any],
    signing_key: SigningKey,
    now_ms: int,
) -> dict[str, Any]:
    """The JSON object a cell sends a peer's Relay, signed by the caller's relay key."""
    unsigned = {
        **fields,
        OPERATION: operation.value,
        CALLER: caller,
        TARGET: target,
        SIGNED_AT: now_ms,
        CALL_ID: b64url_encode(secrets.token_bytes(CALL_ID_BYTES)),
    }
    signature = signing_key.sign(relay_digest(unsigned, SIGNATURE)).signature
    return {**unsigned, SIGNATURE: b64url_encode(signature)}


def read_request(event: Any) -> RelayRequest:
    """The envelope of a request; BadRequest if it is not one (no operation, or not
    signed). Whether the signature is the caller's is checked next, before anything else."""
    if not isinstance(event, dict):
        raise BadRequest("a relay request is a JSON object")
    operation, caller, target = event.get(OPERATION), event.get(CALLER), event.get(TARGET)
    if not isinstance(operation, str) or not isinstance(caller, str):
        raise BadRequest("a relay request names its op and the calling cell")
    try:
        known = RelayOperation(operation)
    except ValueError:
        raise BadRequest(f"no relay operation {operation[:64]!r}") from None
    signed_at, call_id, signature = event.get(SIGNED_AT), event.get(CALL_ID), event.get(SIGNATURE)
    if (
        not is_cell_id(caller)
        or not isinstance(target, str)
        or not is_cell_id(target)
        or type(signed_at) is not int
        or not isinstance(call_id, str)
        or not is_base64url(call_id)
        or decoded_length(call_id) != CALL_ID_BYTES
        or not isinstance(signature, str)
        or not is_base64url(signature)
        or decoded_length(signature) != SIGNATURE_BYTES
    ):
        raise BadRequest("a relay request is signed: from, to, at, id and sig")
    return RelayRequest(known, caller, event, target, signed_at, signature)


def answered(value: Any) -> dict[str, Any]:
    """The answer of an operation done."""
    return {ANSWER: value}


def refused(code: str, message: str, **fields: Any) -> dict[str, Any]:
    """The answer of an operation refused (a docs/protocol.md code) or failed (INTERNAL),
    with the fields its error carries (STALE_DEVICES: `devices`, `selfDevices`)."""
    return {REFUSAL: {"code": code, "message": message, **fields}}


# --- the operations' records ----------------------------------------------------------------


class Nested(Field):
    """One object, read as `record` (a Record subclass)."""

    def __init__(self, name: str, record: type[Record], **options: Any) -> None:
        super().__init__(name, **options)
        self.record = record

    def check(self, value: Any) -> Any:
        return self.record.read(value)

    def dump(self, value: Any) -> Any:
        return value.to_wire()

    def value_schema(self) -> Schema:
        return self.record.schema()


@dataclasses.dataclass(frozen=True)
class StoreMessage(Record):
    """storeMessage: a message from `sender` (a user of the calling cell) to a user of the
    called cell, as its sender's frame had it."""

    sender: str = wire(One("sender", USER_ID))
    frame: SendMessage = wire(Nested("frame", SendMessage))
    # Which of the sender's devices wrote it: `fromDevice` on the copies (§8).
    sender_device: str = wire(One("senderDevice", DEVICE_ID, default=PRIMARY_DEVICE_ID))


@dataclasses.dataclass(frozen=True)
class RelayedReceipt(Record):
    """A receipt for `recipient` (a user of the called cell) about its messages."""

    recipient: str = wire(One("recipient", USER_ID))
    status: ReceiptStatus = wire(Choice("status", ReceiptStatus))
    message_ids: list[str] = wire(Listing("messageIds", MESSAGE_ID))
    by: str = wire(One("by", USER_ID))
    at: int = wire(Integer("at", low=0, high=MAX_SENT_AT))


@dataclasses.dataclass(frozen=True)
class StoreReceipts(Record):
    """storeReceipt: the receipts of one ack (or one markSeen) for users of one cell."""

    receipts: list[RelayedReceipt] = wire(Records("receipts", RelayedReceipt, min_items=1))

    def check(self) -> None:
        # One ack names at most 100 messages, so at most 100 senders.
        if len(self.receipts) > MAX_IDS_PER_FRAME:
            raise BadRequest(f"receipts: at most {MAX_IDS_PER_FRAME}")


@dataclasses.dataclass(frozen=True)
class PresenceQuery(Record):
    """presence: what `watcher` (a user of the calling cell) may see of these users."""

    watcher: str = wire(One("watcher", USER_ID))
    user_ids: list[str] = wire(Listing("userIds", USER_ID))
    subscribe: bool = wire(Flag("subscribe", default=False))


@dataclasses.dataclass(frozen=True)
class PresenceAnswer(Record):
    """The entries, in the order asked, and those among them the watcher may see (whose
    changes it will hear of: its cell keeps its subscriptions to these only)."""

    users: list[PresenceEntry] = wire(Records("users", PresenceEntry, min_items=1))
    allowed: list[str] = wire(Listing("allowed", USER_ID, min_items=0))


@dataclasses.dataclass(frozen=True)
class PresenceChanged(Record):
    """presenceChanged: `entry` is what `watchers` see of `user` now; `hiddenFrom` may no
    longer see the user (they are shown an unknown user, and their subscriptions end)."""

    user: str = wire(One("user", USER_ID))
    entry: PresenceEntry = wire(Nested("entry", PresenceEntry))
    watchers: list[str] = wire(
        Listing("watchers", USER_ID, min_items=0, max_items=MAX_WATCHERS_PER_CHANGE)
    )
    hidden_from: Sequence[str] = wire(
        Listing("hiddenFrom", USER_ID, min_items=0, max_items=MAX_WATCHERS_PER_CHANGE, default=())
    )

    def check(self) -> None:
        if self.entry.user_id != self.user:
            raise BadRequest("entry: must be the user's")
        if not self.watchers and not self.hidden_from:
            raise BadRequest("watchers: nobody to tell")


@dataclasses.dataclass(frozen=True)
class KeysQuery(Record):
    """keys: the public keys of a user of the called cell (answered with a keys frame)."""

    user_id: str = wire(One("userId", USER_ID))


@dataclasses.dataclass(frozen=True)
class CountRegistration(Record):
    """countRegistration: count one registration from a source address in the called cell,
    the one the shard rule gives the address (logic/registrations.py). `address` is the
    digest counted at the hourly limit (IPv6: of the /64), `block` that of an IPv6
    address's /48, counted at ten times it. `attempt` names the registration: a retry of
    the same one counts once. Answered `{"counted": bool}`."""

    address: str = wire(One("address", SOURCE_DIGEST))
    attempt: str = wire(Text("attempt", max_chars=MAX_ATTEMPT_CHARS))
    block: str | None = wire(One("block", SOURCE_DIGEST, default=None))
