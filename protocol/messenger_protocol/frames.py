"""Every frame of docs/protocol.md, both ways: one dataclass each, one reader, one writer.

    SendMessage.read(document)        # a client frame, validated (BadRequest, TooLarge)
    read_client_frame(document)       # the same, choosing the class by `action`
    MessageFrame(...).to_json()       # a server frame as the text it is sent as
    read_server_frame(document)       # what a client does with a frame it received

Fields a frame does not define are ignored when read (a `from` in a sendMessage,
say), so identity can only come from the connection.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self

from messenger_protocol.encoding import is_message_id
from messenger_protocol.errors import BadRequest, UnknownAction
from messenger_protocol.fields import (
    CURSOR,
    ITEM_ID,
    MESSAGE_ID,
    USER_ID,
    Choice,
    Ciphertext,
    Const,
    Field,
    FixedBytes,
    Flag,
    Integer,
    Listing,
    One,
    Records,
    Schema,
    Text,
    wire,
)
from messenger_protocol.limits import (
    BOX_NONCE_BYTES,
    KEY_BYTES,
    MAX_CONTACTS,
    MAX_EPOCH_CHARS,
    MAX_FRAME_BYTES,
    MAX_PUSH_TOKEN_CHARS,
    MAX_SENT_AT,
    PUSH_TOKEN_PATTERNS,
)
from messenger_protocol.names import (
    SENT_STATUS,
    Action,
    ErrorCode,
    FrameType,
    PresenceVisibility,
    PushPlatform,
    ReceiptStatus,
)

_PUSH_TOKENS = {platform: re.compile(pattern) for platform, pattern in PUSH_TOKEN_PATTERNS.items()}
_TIME = {"low": 0, "high": MAX_SENT_AT}
_SPECS: dict[type, tuple[tuple[str, Field], ...]] = {}


class Record:
    """A JSON object with declared fields (frames, and objects inside them)."""

    @classmethod
    def specs(cls) -> tuple[tuple[str, Field], ...]:
        """(attribute, field spec) in declaration order: the order fields are read."""
        specs = _SPECS.get(cls)
        if specs is None:
            specs = tuple((f.name, f.metadata["wire"]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            _SPECS[cls] = specs
        return specs

    @classmethod
    def read(cls, document: Any) -> Self:
        """The record from decoded JSON; BadRequest (or TooLarge) names the first bad field."""
        if not isinstance(document, dict):
            raise BadRequest("frame must be a JSON object")
        record = cls(**{attr: spec.read(document) for attr, spec in cls.specs()})
        record.check()
        return record

    def check(self) -> None:
        """Rules across fields; BadRequest when broken."""

    def to_wire(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for attr, spec in self.specs():
            value = getattr(self, attr)
            if value is None and not spec.required and not spec.nullable:
                continue  # optional and absent
            document[spec.name] = None if value is None else spec.dump(value)
        return document

    @classmethod
    def schema(cls) -> Schema:
        specs = [spec for _, spec in cls.specs()]
        return {
            "type": "object",
            "properties": {spec.name: spec.schema() for spec in specs},
            "required": [spec.name for spec in specs if spec.required],
        }


class Frame(Record):
    """A frame: a record told apart by its `action` (client) or `type` (server) field."""

    DISCRIMINATOR: ClassVar[str]
    KIND: ClassVar[str]

    @classmethod
    def read(cls, document: Any) -> Self:
        if isinstance(document, dict) and document.get(cls.DISCRIMINATOR) != cls.KIND:
            raise BadRequest(f"{cls.DISCRIMINATOR}: must be {str(cls.KIND)!r}")
        return super().read(document)

    def to_wire(self) -> dict[str, Any]:
        return {self.DISCRIMINATOR: self.KIND, **super().to_wire()}

    def to_json(self) -> str:
        """The frame as compact JSON text, as it goes on the wire."""
        return to_json(self.to_wire())

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["properties"] = {
            cls.DISCRIMINATOR: {"type": "string", "const": cls.KIND},
            **schema["properties"],
        }
        schema["required"] = [cls.DISCRIMINATOR, *schema["required"]]
        return schema


def to_json(document: dict[str, Any]) -> str:
    """Compact JSON text (UTF-8 on the wire: WebSocket text frames are UTF-8)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


# --- client -> server (§2) ------------------------------------------------------------------


class ClientFrame(Frame):
    DISCRIMINATOR = "action"
    ACTION: ClassVar[Action]
    SUMMARY: ClassVar[str] = ""


@dataclasses.dataclass(frozen=True)
class SendMessage(ClientFrame):
    KIND = ACTION = Action.SEND_MESSAGE
    SUMMARY = "Send an end-to-end encrypted message; answered by `ack` once stored."
    # Read first: an oversize body is TOO_LARGE, whatever else is wrong.
    body: str = wire(Ciphertext("body", description="NaCl Box ciphertext (§5), base64url"))
    message_id: str = wire(
        One("messageId", MESSAGE_ID, description="chosen by the sender, unique per sender")
    )
    to: str = wire(One("to", USER_ID))
    nonce: str = wire(FixedBytes("nonce", BOX_NONCE_BYTES))
    sent_at: int = wire(Integer("sentAt", **_TIME, description="ms since the epoch"))


@dataclasses.dataclass(frozen=True)
class Ack(ClientFrame):
    KIND = ACTION = Action.ACK
    SUMMARY = "Confirm delivered items (messages and receipts): the server deletes them."
    ids: list[str] = wire(Listing("ids", ITEM_ID))


@dataclasses.dataclass(frozen=True)
class MarkSeen(ClientFrame):
    KIND = ACTION = Action.MARK_SEEN
    SUMMARY = "Tell a sender its messages were seen."
    to: str = wire(One("to", USER_ID))
    message_ids: list[str] = wire(Listing("messageIds", MESSAGE_ID))


@dataclasses.dataclass(frozen=True)
class Sync(ClientFrame):
    KIND = ACTION = Action.SYNC
    SUMMARY = (
        "Send me one page of what is still queued for me, in queue order, then `syncDone`; "
        "`after` asks for the page after the one that `syncDone` ended."
    )
    after: str | None = wire(
        One(
            "after",
            CURSOR,
            default=None,
            description="the `cursor` of the previous page's syncDone; without it, the page "
            "starts from the oldest unacknowledged item",
        )
    )
    batch: bool = wire(
        Flag(
            "batch",
            default=False,
            description="group the items into `items` frames of at most 32 KB",
        )
    )


@dataclasses.dataclass(frozen=True)
class GetPresence(ClientFrame):
    KIND = ACTION = Action.GET_PRESENCE
    SUMMARY = "Who is online; with `subscribe`, changes until this connection closes."
    user_ids: list[str] = wire(Listing("userIds", USER_ID))
    subscribe: bool = wire(Flag("subscribe", default=False))


@dataclasses.dataclass(frozen=True)
class GetKeys(ClientFrame):
    KIND = ACTION = Action.GET_KEYS
    SUMMARY = "A user's public keys."
    user_id: str = wire(One("userId", USER_ID))


@dataclasses.dataclass(frozen=True)
class RegisterPush(ClientFrame):
    KIND = ACTION = Action.REGISTER_PUSH
    SUMMARY = "Register this device for mobile push (no content is ever pushed)."
    platform: PushPlatform = wire(Choice("platform", PushPlatform))
    token: str = wire(Text("token", max_chars=MAX_PUSH_TOKEN_CHARS))

    def check(self) -> None:
        # Checked here so that a token SNS would refuse never reaches SNS.
        if not _PUSH_TOKENS[self.platform].fullmatch(self.token):
            raise BadRequest(f"token: not a {self.platform.value} device token")

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["allOf"] = [
            {
                "if": {"properties": {"platform": {"const": platform.value}}},
                "then": {"properties": {"token": {"pattern": pattern}}},
            }
            for platform, pattern in PUSH_TOKEN_PATTERNS.items()
        ]
        return schema


@dataclasses.dataclass(frozen=True)
class Ping(ClientFrame):
    KIND = ACTION = Action.PING
    SUMMARY = "Keep the connection inside the 10-minute idle limit; answered by `pong`."


@dataclasses.dataclass(frozen=True)
class SetPresenceVisibility(ClientFrame):
    KIND = ACTION = Action.SET_PRESENCE_VISIBILITY
    SUMMARY = (
        "Who may see my presence: everyone, only `contacts`, or nobody; answered by "
        "`presenceVisibility`."
    )
    visibility: PresenceVisibility = wire(Choice("visibility", PresenceVisibility))
    contacts: list[str] | None = wire(
        Listing(
            "contacts",
            USER_ID,
            min_items=0,
            max_items=MAX_CONTACTS,
            default=None,
            description="with `contacts`: who may see it (replaces the previous list); "
            "ignored otherwise",
        )
    )

    def allowed(self) -> list[str]:
        """The contacts in effect: the listed ones (each once) with `contacts`, else none."""
        if self.visibility is not PresenceVisibility.CONTACTS:
            return []
        return list(dict.fromkeys(self.contacts or []))


CLIENT_FRAMES: dict[Action, type[ClientFrame]] = {
    frame.ACTION: frame
    for frame in (
        SendMessage,
        Ack,
        MarkSeen,
        Sync,
        GetPresence,
        GetKeys,
        RegisterPush,
        Ping,
        SetPresenceVisibility,
    )
}


def read_client_frame(document: Any) -> ClientFrame:
    """A decoded client frame as its class; UnknownAction when `action` names none."""
    action = document.get("action") if isinstance(document, dict) else None
    frame_class = CLIENT_FRAMES.get(action) if isinstance(action, str) else None  # type: ignore[call-overload]
    if frame_class is None:
        raise unknown_action(document)
    return frame_class.read(document)


def unknown_action(document: Any) -> UnknownAction:
    """The refusal of a frame whose `action` names no route (or that has none)."""
    action = document.get("action") if isinstance(document, dict) else None
    if isinstance(action, str):
        return UnknownAction(f"unknown action {action[:64]!r}")
    return UnknownAction("frame has no action")


def load_json(body: str | None) -> Any:
    """A frame's text as JSON, or BadRequest. Deep nesting is a bad request too."""
    if body is None or body == "":
        raise BadRequest("frame is empty")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadRequest("frame is not JSON") from error


def reference_of(document: Any) -> str | None:
    """An error's `ref`: the frame's messageId when well formed, else its action."""
    if not isinstance(document, dict):
        return None
    message_id = document.get("messageId")
    if is_message_id(message_id):
        return message_id
    action = document.get("action")
    if isinstance(action, str) and 0 < len(action) <= 64:
        return action
    return None


# --- server -> client (§3) ------------------------------------------------------------------


class ServerFrame(Frame):
    DISCRIMINATOR = "type"
    TYPE: ClassVar[FrameType]
    SUMMARY: ClassVar[str] = ""


@dataclasses.dataclass(frozen=True)
class AckFrame(ServerFrame):
    KIND = TYPE = FrameType.ACK
    SUMMARY = "The sender's message is durably stored for its recipient."
    message_id: str = wire(One("messageId", MESSAGE_ID))
    server_ts: int = wire(Integer("serverTs", **_TIME))
    status: str = wire(Const("status", SENT_STATUS))


@dataclasses.dataclass(frozen=True)
class MessageFrame(ServerFrame):
    KIND = TYPE = FrameType.MESSAGE
    SUMMARY = "A message for the caller, pushed live or sent on sync; ack its `id`."
    id: str = wire(One("id", ITEM_ID, description="the queue item's id: put it in `ack`"))
    message_id: str = wire(One("messageId", MESSAGE_ID))
    sender: str = wire(One("from", USER_ID))
    body: str = wire(Ciphertext("body"))
    nonce: str = wire(FixedBytes("nonce", BOX_NONCE_BYTES))
    sent_at: int = wire(Integer("sentAt", **_TIME))
    server_ts: int = wire(Integer("serverTs", **_TIME))


@dataclasses.dataclass(frozen=True)
class ReceiptFrame(ServerFrame):
    KIND = TYPE = FrameType.RECEIPT
    SUMMARY = "Some of the caller's messages were delivered or seen; ack its `id`."
    id: str = wire(One("id", ITEM_ID))
    status: ReceiptStatus = wire(Choice("status", ReceiptStatus))
    message_ids: list[str] = wire(Listing("messageIds", MESSAGE_ID))
    by: str = wire(One("by", USER_ID))
    at: int = wire(Integer("at", **_TIME))


class FrameList(Field):
    """An array of server frames of some types, each read as the class its `type` names."""

    def __init__(
        self,
        name: str,
        kinds: Sequence[type[ServerFrame]],
        *,
        min_items: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.kinds = {str(kind.TYPE): kind for kind in kinds}
        self.min_items = min_items

    def check(self, value: Any) -> list[Any]:
        if type(value) is not list or len(value) < self.min_items:
            raise BadRequest(f"{self.name}: must be a list of at least {self.min_items} frames")
        frames = []
        for index, item in enumerate(value):
            kind = item.get("type") if isinstance(item, dict) else None
            frame_class = self.kinds.get(kind) if isinstance(kind, str) else None
            if frame_class is None:
                raise BadRequest(f"{self.name}.{index}: must be a {' or '.join(self.kinds)} frame")
            frames.append(frame_class.read(item))
        return frames

    def dump(self, value: Any) -> Any:
        return [frame.to_wire() for frame in value]

    def value_schema(self) -> Schema:
        return {
            "type": "array",
            "minItems": self.min_items,
            "items": {"oneOf": [kind.schema() for kind in self.kinds.values()]},
        }


@dataclasses.dataclass(frozen=True)
class SyncDoneFrame(ServerFrame):
    KIND = TYPE = FrameType.SYNC_DONE
    SUMMARY = (
        "The end of a sync page: how many items it sent, whether more remain (then a "
        "`cursor` for the next page), and the home cell's generation."
    )
    count: int = wire(Integer("count", low=0, high=2**31, description="items in this page"))
    more: bool = wire(
        Flag("more", description="true: more items remain; ask with `sync` and `after: cursor`")
    )
    epoch: str = wire(
        Text(
            "epoch",
            max_chars=MAX_EPOCH_CHARS,
            description="the home cell's current generation; it changes after a failover",
        )
    )
    cursor: str | None = wire(
        One("cursor", CURSOR, default=None, description="only when `more`: opaque, for `after`")
    )

    def check(self) -> None:
        if self.more != (self.cursor is not None):
            raise BadRequest("cursor: present exactly when more is true")

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["if"] = {"properties": {"more": {"const": True}}}
        schema["then"] = {"required": ["cursor"]}
        schema["else"] = {"not": {"required": ["cursor"]}}
        return schema


QueueItemFrame = MessageFrame | ReceiptFrame


@dataclasses.dataclass(frozen=True)
class ItemsFrame(ServerFrame):
    KIND = TYPE = FrameType.ITEMS
    SUMMARY = (
        "Several queued items in one frame of at most 32 KB, in queue order (only to a "
        "`sync` with `batch`); ack each item's `id`."
    )
    items: list[QueueItemFrame] = wire(FrameList("items", (MessageFrame, ReceiptFrame)))

    @classmethod
    def pack(
        cls, frames: Iterable[QueueItemFrame], limit: int = MAX_FRAME_BYTES
    ) -> list[ServerFrame]:
        """The frames, in order, grouped into `items` frames of at most `limit` bytes of
        UTF-8 JSON each. An item too big to travel inside an `items` frame (none is, at
        the protocol's body limit) goes as its own frame."""
        envelope = len(cls(items=[]).to_json().encode())
        packed: list[ServerFrame] = []
        group: list[QueueItemFrame] = []
        size = envelope
        for frame in frames:
            frame_bytes = len(frame.to_json().encode())
            separator = 1 if group else 0
            if group and size + separator + frame_bytes > limit:
                packed.append(cls(items=group))
                group, size, separator = [], envelope, 0
            if envelope + frame_bytes > limit:
                packed.append(frame)
                continue
            group.append(frame)
            size += separator + frame_bytes
        if group:
            packed.append(cls(items=group))
        return packed


@dataclasses.dataclass(frozen=True)
class PresenceEntry(Record):
    user_id: str = wire(One("userId", USER_ID))
    online: bool = wire(Flag("online"))
    last_seen: int | None = wire(
        Integer(
            "lastSeen",
            **_TIME,
            nullable=True,
            description="when the last connection closed; null while online or unknown",
        )
    )


@dataclasses.dataclass(frozen=True)
class PresenceFrame(ServerFrame):
    KIND = TYPE = FrameType.PRESENCE
    SUMMARY = "Online state: the answer to getPresence, and each change subscribed to."
    users: list[PresenceEntry] = wire(Records("users", PresenceEntry, min_items=1))


@dataclasses.dataclass(frozen=True)
class KeysFrame(ServerFrame):
    KIND = TYPE = FrameType.KEYS
    SUMMARY = "A user's public keys."
    user_id: str = wire(One("userId", USER_ID))
    sign_key: str = wire(FixedBytes("signKey", KEY_BYTES, description="Ed25519 verify key"))
    box_key: str = wire(FixedBytes("boxKey", KEY_BYTES, description="Curve25519 public key"))


@dataclasses.dataclass(frozen=True)
class PushRegisteredFrame(ServerFrame):
    KIND = TYPE = FrameType.PUSH_REGISTERED
    SUMMARY = "The device is registered for push."
    platform: PushPlatform = wire(Choice("platform", PushPlatform))


@dataclasses.dataclass(frozen=True)
class PongFrame(ServerFrame):
    KIND = TYPE = FrameType.PONG
    SUMMARY = "The answer to ping."


@dataclasses.dataclass(frozen=True)
class PresenceVisibilityFrame(ServerFrame):
    KIND = TYPE = FrameType.PRESENCE_VISIBILITY
    SUMMARY = "The answer to setPresenceVisibility: the visibility now in effect."
    visibility: PresenceVisibility = wire(Choice("visibility", PresenceVisibility))
    count: int = wire(
        Integer(
            "count",
            low=0,
            high=MAX_CONTACTS,
            description="how many contacts may see it (0 unless `contacts`)",
        )
    )


@dataclasses.dataclass(frozen=True)
class ErrorFrame(ServerFrame):
    KIND = TYPE = FrameType.ERROR
    SUMMARY = "A refused frame; nothing was changed on the server."
    code: ErrorCode = wire(Choice("code", ErrorCode))
    message: str = wire(Text("message", description="for people, not for programs"))
    ref: str | None = wire(
        Text(
            "ref",
            nullable=True,
            description="the refused frame's messageId when well formed, "
            "else its action, else null",
        )
    )


SERVER_FRAMES: dict[FrameType, type[ServerFrame]] = {
    frame.TYPE: frame
    for frame in (
        AckFrame,
        MessageFrame,
        ReceiptFrame,
        SyncDoneFrame,
        ItemsFrame,
        PresenceFrame,
        KeysFrame,
        PushRegisteredFrame,
        PongFrame,
        PresenceVisibilityFrame,
        ErrorFrame,
    )
}


def read_server_frame(document: Any) -> ServerFrame:
    """A decoded server frame as its class; BadRequest for an unknown or broken one."""
    kind = document.get("type") if isinstance(document, dict) else None
    frame_class = SERVER_FRAMES.get(kind) if isinstance(kind, str) else None  # type: ignore[call-overload]
    if frame_class is None:
        raise BadRequest(f"type: not a server frame type ({str(kind)[:64]!r})")
    return frame_class.read(document)
