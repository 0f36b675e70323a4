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

from messenger_protocol.devices import (
    DEVICES_SPEC,
    LIST_SIG_SPEC,
    LIST_VERSION_SPEC,
    Device,
    DeviceList,
    DeviceListRules,
    KeyCopy,
)
from messenger_protocol.encoding import is_message_id
from messenger_protocol.errors import BadRequest, TooLarge, UnknownAction
from messenger_protocol.fields import (
    CURSOR,
    DEVICE_ID,
    EPOCH,
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
    Nested,
    One,
    Records,
    Schema,
    Text,
    wire,
)
from messenger_protocol.limits import (
    BOX_NONCE_BYTES,
    KEY_BYTES,
    MAX_BLOCKED,
    MAX_CONTACTS,
    MAX_DEVICES,
    MAX_FRAME_BYTES,
    MAX_PUSH_TOKEN_CHARS,
    MAX_SENT_AT,
    MAX_VERSION,
    PUSH_TOKEN_PATTERNS,
    WRAPPED_KEY_BYTES,
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
from messenger_protocol.records import Record, to_json

_PUSH_TOKENS = {platform: re.compile(pattern) for platform, pattern in PUSH_TOKEN_PATTERNS.items()}
_TIME = {"low": 0, "high": MAX_SENT_AT}
_VERSION = {"low": 0, "high": MAX_VERSION}

# v1.2 has the server send these fields (docs/protocol.md §3, §6, §7), and ours always does
# (tests/support/schemas.py holds every frame the tests see to it). The readers and the
# schemas take them as optional, absent when None, so that a v1.2 client still reads a
# v1.1 server. Setting this to True makes every one of them required, in the readers and
# in docs/asyncapi.yaml.
REQUIRE_V12_SERVER_FIELDS = False
# Which they are: the wire names, by frame type (`retryAfter`: with RATE_LIMITED; with
# QUEUE_FULL, which only a v1.2 server sends, it is required already).
V12_SERVER_FIELDS: dict[FrameType, tuple[str, ...]] = {
    FrameType.ACK: ("epoch", "dv"),
    FrameType.SYNC_DONE: ("dv",),
    FrameType.PONG: ("dv",),
    FrameType.ERROR: ("retryAfter",),
}
_V12_SERVER_FIELD: dict[str, Any] = {"default": None, "required": REQUIRE_V12_SERVER_FIELDS}


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


# --- client -> server (§2) ------------------------------------------------------------------


class ClientFrame(Frame):
    DISCRIMINATOR = "action"
    ACTION: ClassVar[Action]
    SUMMARY: ClassVar[str] = ""


def _requires(field: str, *others: str) -> Schema:
    """A schema rule: when `field` is present, so are `others`."""
    return {"if": {"required": [field]}, "then": {"required": list(others)}}


def _excludes(field: str, *others: str) -> Schema:
    """A schema rule: when `field` is present, none of `others` is."""
    return {"not": {"anyOf": [{"required": [field, other]} for other in others]}}


def _absent(*fields: str) -> Schema:
    """A schema rule: none of `fields` is present."""
    return {"not": {"anyOf": [{"required": [field]} for field in fields]}}


def _list_version(name: str, description: str) -> Integer:
    """An optional device-list version (§8)."""
    return Integer(name, **_VERSION, default=None, description=description)


def _key_copies(name: str, min_items: int, max_items: int, description: str) -> Records:
    """An optional list of the message key sealed per device (§8)."""
    return Records(
        name,
        KeyCopy,
        min_items=min_items,
        max_items=max_items,
        default=None,
        description=description,
    )


def _each_device_once(name: str, copies: Sequence[KeyCopy] | None) -> None:
    devices = [copy.device for copy in copies or ()]
    repeated = sorted({device for device in devices if devices.count(device) > 1})
    if repeated:
        raise BadRequest(f"{name}: one copy per device ({', '.join(repeated)} repeated)")


@dataclasses.dataclass(frozen=True)
class SendMessage(ClientFrame):
    KIND = ACTION = Action.SEND_MESSAGE
    SUMMARY = "Send an end-to-end encrypted message; answered by `ack` once stored."
    # Read first: an oversize body is TOO_LARGE, whatever else is wrong.
    body: str = wire(
        Ciphertext(
            "body",
            description="NaCl Box ciphertext (§5), or with `copies` a SecretBox ciphertext "
            "under a fresh key K (§8); base64url",
        )
    )
    message_id: str = wire(
        One(
            "messageId",
            MESSAGE_ID,
            description="chosen by the sender, unique per sender (across its devices)",
        )
    )
    to: str = wire(One("to", USER_ID))
    nonce: str = wire(FixedBytes("nonce", BOX_NONCE_BYTES))
    sent_at: int = wire(Integer("sentAt", **_TIME, description="ms since the epoch"))
    devices: int | None = wire(
        _list_version(
            "devices",
            "the version of the recipient's device list that `copies` follows (§8); absent: 0",
        )
    )
    copies: list[KeyCopy] | None = wire(
        _key_copies(
            "copies",
            1,
            MAX_DEVICES,
            "K sealed for each of the recipient's devices, exactly those of its list (§8); "
            "absent: the body is a Box for device 1 (§5)",
        )
    )
    self_devices: int | None = wire(
        _list_version(
            "selfDevices",
            "the version of the sender's own device list that `selfCopies` follows (§8); absent: 0",
        )
    )
    self_copies: list[KeyCopy] | None = wire(
        _key_copies(
            "selfCopies",
            0,
            MAX_DEVICES - 1,
            "K sealed for each of the sender's other devices, exactly (§8); absent: []",
        )
    )

    def check(self) -> None:
        # A list of copies means nothing without the version it follows, and copies for
        # the sender's devices without the recipient's would leave a body nobody can open.
        if self.copies is not None and self.devices is None:
            raise BadRequest("devices: required with copies")
        if self.self_copies is not None and self.self_devices is None:
            raise BadRequest("selfDevices: required with selfCopies")
        if self.self_copies is not None and self.copies is None:
            raise BadRequest("copies: required with selfCopies")
        _each_device_once("copies", self.copies)
        _each_device_once("selfCopies", self.self_copies)

    @property
    def sealed_for_devices(self) -> bool:
        """The §8 form: the body is sealed under K, and K is in `copies`."""
        return self.copies is not None

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["allOf"] = [
            _requires("copies", "devices"),
            _requires("selfCopies", "selfDevices", "copies"),
        ]
        return schema


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
    SUMMARY = (
        "Keep the connection inside the 10-minute idle limit; answered by `pong` (on a side "
        "a switch demoted, by `error` MOVED: fetch the directory, §7)."
    )


def _user_ids(name: str, limit: int, description: str) -> Listing:
    """An optional list of 0 to `limit` user ids."""
    return Listing(
        name, USER_ID, min_items=0, max_items=limit, default=None, description=description
    )


def _check_replace_or_edit(
    name: str,
    replacement: Sequence[str] | None,
    add: Sequence[str] | None,
    remove: Sequence[str] | None,
) -> None:
    """`name` replaces a list, `add` and `remove` edit it: one or the other, and no user
    both added and removed."""
    if replacement is not None and (add is not None or remove is not None):
        raise BadRequest(f"{name}: replaces the list, so not with add or remove")
    both = sorted(set(add or ()) & set(remove or ()))
    if both:
        raise BadRequest(f"add: {', '.join(both)} also in remove")


def _listed_after(
    name: str,
    limit: int,
    current: Iterable[str],
    replacement: Sequence[str] | None,
    add: Sequence[str] | None,
    remove: Sequence[str] | None,
) -> list[str]:
    """The list once a frame applies to `current`: the replacement, or `current` without
    `remove`, then `add` (each user once); BadRequest past `limit`."""
    if add is None and remove is None:
        return list(dict.fromkeys(replacement or []))
    removed = set(remove or ())
    listed = list(dict.fromkeys([*(u for u in current if u not in removed), *(add or ())]))
    if len(listed) > limit:
        raise BadRequest(f"{name}: at most {limit} user ids (this would make {len(listed)})")
    return listed


@dataclasses.dataclass(frozen=True)
class SetPresenceVisibility(ClientFrame):
    KIND = ACTION = Action.SET_PRESENCE_VISIBILITY
    SUMMARY = (
        "Who may see my presence: everyone, only `contacts`, or nobody; answered by "
        "`presenceVisibility`."
    )
    visibility: PresenceVisibility = wire(Choice("visibility", PresenceVisibility))
    contacts: list[str] | None = wire(
        _user_ids(
            "contacts",
            MAX_CONTACTS,
            "with `contacts`: who may see it (replaces the previous list); ignored otherwise",
        )
    )
    add: list[str] | None = wire(
        _user_ids(
            "add",
            MAX_CONTACTS,
            "instead of `contacts`: users to add to the list (each device adds the people it "
            "writes to)",
        )
    )
    remove: list[str] | None = wire(
        _user_ids("remove", MAX_CONTACTS, "instead of `contacts`: users to take off the list")
    )

    def check(self) -> None:
        _check_replace_or_edit("contacts", self.contacts, self.add, self.remove)

    @property
    def edits_contacts(self) -> bool:
        """Whether the frame edits the stored list (add/remove) rather than replacing it."""
        return self.add is not None or self.remove is not None

    def allowed(self) -> list[str]:
        """The contacts a frame that replaces the list puts in effect: the listed ones
        (each once) with `contacts`, else none. (An edit needs the stored list:
        `contacts_after`.)"""
        return self.contacts_after(())

    def contacts_after(self, current: Iterable[str]) -> list[str]:
        """The contacts in effect once this frame applies to the `current` list: none
        unless `contacts`; BadRequest when they would be more than MAX_CONTACTS."""
        if self.visibility is not PresenceVisibility.CONTACTS:
            return []
        return _listed_after(
            "contacts", MAX_CONTACTS, current, self.contacts, self.add, self.remove
        )

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema.update(_excludes("contacts", "add", "remove"))
        return schema


@dataclasses.dataclass(frozen=True)
class SetBlocked(ClientFrame):
    KIND = ACTION = Action.SET_BLOCKED
    SUMMARY = (
        "Whom I block: `userIds` replaces the list, `add` and `remove` edit it; answered by "
        "`blocked`. Nothing from a blocked user is stored, delivered or told, and the "
        "blocked cannot tell."
    )
    user_ids: list[str] | None = wire(
        _user_ids("userIds", MAX_BLOCKED, "the whole list of blocked users (replaces it)")
    )
    add: list[str] | None = wire(
        _user_ids("add", MAX_BLOCKED, "instead of `userIds`: users to block")
    )
    remove: list[str] | None = wire(
        _user_ids("remove", MAX_BLOCKED, "instead of `userIds`: users to block no more")
    )

    def check(self) -> None:
        if self.user_ids is None and self.add is None and self.remove is None:
            raise BadRequest("userIds: required, unless add or remove edit the list")
        _check_replace_or_edit("userIds", self.user_ids, self.add, self.remove)

    def blocked_after(self, current: Iterable[str]) -> list[str]:
        """The users blocked once this frame applies to the `current` list (each once);
        BadRequest when they would be more than MAX_BLOCKED."""
        return _listed_after("userIds", MAX_BLOCKED, current, self.user_ids, self.add, self.remove)

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["anyOf"] = [{"required": [name]} for name in ("userIds", "add", "remove")]
        schema.update(_excludes("userIds", "add", "remove"))
        return schema


@dataclasses.dataclass(frozen=True)
class GetSettings(ClientFrame):
    KIND = ACTION = Action.GET_SETTINGS
    SUMMARY = (
        "What the server holds for me (presence visibility, contacts, blocked users), so that "
        "every device can show and edit it; answered by `settings`."
    )


@dataclasses.dataclass(frozen=True)
class SetDevices(ClientFrame, DeviceListRules):
    KIND = ACTION = Action.SET_DEVICES
    SUMMARY = (
        "Store my signed device list (from device 1 only; a version above the stored one, or "
        "the same list again); answered by `devices`. A device no longer listed is "
        "disconnected (`DEVICE_REMOVED`) and its queue deleted."
    )
    version: int = wire(LIST_VERSION_SPEC)
    devices: list[Device] = wire(DEVICES_SPEC)
    sig: str | None = wire(LIST_SIG_SPEC)

    @classmethod
    def of(cls, listing: DeviceList) -> SetDevices:
        """The frame that sends a (signed) device list."""
        return cls(version=listing.version, devices=list(listing.devices), sig=listing.sig)

    def device_list(self, user_id: str) -> DeviceList:
        """The list this frame sends, as the caller's (`user_id` from the connection)."""
        return DeviceList(
            user_id=user_id, version=self.version, devices=list(self.devices), sig=self.sig
        )


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
        SetBlocked,
        GetSettings,
        SetDevices,
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


def check_frame_size(text: str) -> None:
    """TooLarge when a frame's text is over MAX_FRAME_BYTES as UTF-8 (§3): API Gateway
    takes messages of several frames, and a sendMessage with a key copy for each device
    of both sides can pass 32 KB even when its body is within its own limit."""
    size = len(text.encode())
    if size > MAX_FRAME_BYTES:
        raise TooLarge(f"the frame is {size} bytes, over {MAX_FRAME_BYTES}")


def reference_of(document: Any) -> str | None:
    """An error's `ref`: the frame's messageId when well formed, else its action (any
    non-empty string, however long: the frame itself was at most 32 KB), else None."""
    if not isinstance(document, dict):
        return None
    message_id = document.get("messageId")
    if is_message_id(message_id):
        return message_id
    action = document.get("action")
    if isinstance(action, str) and action:
        return action
    return None


# --- server -> client (§3) ------------------------------------------------------------------


class ServerFrame(Frame):
    DISCRIMINATOR = "type"
    TYPE: ClassVar[FrameType]
    SUMMARY: ClassVar[str] = ""


def _directory_version() -> Integer:
    return Integer(
        "dv",
        **_VERSION,
        **_V12_SERVER_FIELD,
        description="the newest directory version this cell knows (§6): a client whose "
        "directory is older fetches the numbered copy",
    )


@dataclasses.dataclass(frozen=True)
class AckFrame(ServerFrame):
    KIND = TYPE = FrameType.ACK
    SUMMARY = "The sender's message is durably stored for its recipient."
    message_id: str = wire(One("messageId", MESSAGE_ID))
    server_ts: int = wire(Integer("serverTs", **_TIME))
    status: str = wire(Const("status", SENT_STATUS))
    epoch: str | None = wire(
        One(
            "epoch",
            EPOCH,
            **_V12_SERVER_FIELD,
            description="the epoch of the cell that stored the message, the recipient's home, "
            "when it was stored (§7): the sender keeps it with the message",
        )
    )
    dv: int | None = wire(_directory_version())


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
    from_device: str | None = wire(
        One(
            "fromDevice",
            DEVICE_ID,
            default=None,
            description="the sender's device that wrote it (§8): its boxKey opens `key`",
        )
    )
    key: str | None = wire(
        FixedBytes(
            "key",
            WRAPPED_KEY_BYTES,
            default=None,
            description="this device's copy of the message key K (§8); absent: the body is a "
            "Box (§5)",
        )
    )
    key_nonce: str | None = wire(
        FixedBytes("keyNonce", BOX_NONCE_BYTES, default=None, description="the nonce of `key`")
    )
    to: str | None = wire(
        One(
            "to",
            USER_ID,
            default=None,
            description="only on a copy of one's own message (then `from` is oneself): the peer",
        )
    )

    def check(self) -> None:
        if (self.key is None) != (self.key_nonce is None):
            raise BadRequest("keyNonce: present exactly when key is")
        if self.key is not None and self.from_device is None:
            raise BadRequest("fromDevice: required with key")
        if self.to is not None and self.key is None:
            raise BadRequest("key: required with to")

    @property
    def sealed_for_devices(self) -> bool:
        """The §8 form: open `key` first, then the body with it."""
        return self.key is not None

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["allOf"] = [
            _requires("key", "keyNonce", "fromDevice"),
            _requires("keyNonce", "key"),
            _requires("to", "key"),
        ]
        return schema


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
        One(
            "epoch",
            EPOCH,
            description="the home cell's current generation; it changes after a failover",
        )
    )
    cursor: str | None = wire(
        One("cursor", CURSOR, default=None, description="only when `more`: opaque, for `after`")
    )
    dv: int | None = wire(_directory_version())

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
    sign_key: str = wire(
        FixedBytes("signKey", KEY_BYTES, description="Ed25519 verify key: the account key")
    )
    box_key: str = wire(FixedBytes("boxKey", KEY_BYTES, description="Curve25519 public key"))
    devices: DeviceList | None = wire(
        Nested(
            "devices",
            DeviceList,
            default=None,
            description="the user's signed device list (§8), when its version is 1 or more: "
            "verify `sig` with the pinned account key",
        )
    )

    def check(self) -> None:
        if self.devices is None:
            return
        if self.devices.user_id != self.user_id:
            raise BadRequest("devices.userId: must be the keys' userId")
        if self.devices.version < 1:
            raise BadRequest("devices.version: a list of version 0 is not sent")

    @classmethod
    def schema(cls) -> Schema:
        schema = super().schema()
        schema["properties"]["devices"]["properties"]["version"] = {
            **schema["properties"]["devices"]["properties"]["version"],
            "minimum": 1,
        }
        return schema


@dataclasses.dataclass(frozen=True)
class PushRegisteredFrame(ServerFrame):
    KIND = TYPE = FrameType.PUSH_REGISTERED
    SUMMARY = "The device is registered for push."
    platform: PushPlatform = wire(Choice("platform", PushPlatform))


@dataclasses.dataclass(frozen=True)
class PongFrame(ServerFrame):
    KIND = TYPE = FrameType.PONG
    SUMMARY = "The answer to ping."
    dv: int | None = wire(_directory_version())


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
class SeenStoredFrame(ServerFrame):
    KIND = TYPE = FrameType.SEEN_STORED
    SUMMARY = (
        "The `seen` receipt of a markSeen is queued for `to`; the reader keeps its mark until "
        "this answer, with its `epoch` (§7)."
    )
    to: str = wire(One("to", USER_ID, description="the `to` of the markSeen: the sender"))
    message_ids: list[str] = wire(
        Listing("messageIds", MESSAGE_ID, description="the `messageIds` of the markSeen")
    )
    epoch: str = wire(
        One(
            "epoch",
            EPOCH,
            description="the epoch of the cell that stored the receipt, the home cell of `to`",
        )
    )


@dataclasses.dataclass(frozen=True)
class BlockedFrame(ServerFrame):
    KIND = TYPE = FrameType.BLOCKED
    SUMMARY = "The answer to setBlocked."
    count: int = wire(
        Integer("count", low=0, high=MAX_BLOCKED, description="distinct users now blocked")
    )


@dataclasses.dataclass(frozen=True)
class SettingsFrame(ServerFrame):
    KIND = TYPE = FrameType.SETTINGS
    SUMMARY = "The answer to getSettings: what the server holds for the caller."
    visibility: PresenceVisibility = wire(
        Choice("visibility", PresenceVisibility, description="who may see the caller's presence")
    )
    contacts: list[str] = wire(
        Listing(
            "contacts",
            USER_ID,
            min_items=0,
            max_items=MAX_CONTACTS,
            description="who may see the caller's presence under `contacts`",
        )
    )
    blocked: list[str] = wire(
        Listing(
            "blocked",
            USER_ID,
            min_items=0,
            max_items=MAX_BLOCKED,
            description="the users the caller blocks",
        )
    )


@dataclasses.dataclass(frozen=True)
class DevicesFrame(ServerFrame, DeviceList):
    KIND = TYPE = FrameType.DEVICES
    SUMMARY = "The answer to setDevices: the caller's device list as stored (§8)."


# The errors that carry `retryAfter`, and those that carry the device-list versions.
_RETRY_AFTER_CODES = (ErrorCode.RATE_LIMITED, ErrorCode.QUEUE_FULL)
_RETRY_AFTER_REQUIRED = _RETRY_AFTER_CODES if REQUIRE_V12_SERVER_FIELDS else (ErrorCode.QUEUE_FULL,)


@dataclasses.dataclass(frozen=True)
class ErrorFrame(ServerFrame):
    KIND = TYPE = FrameType.ERROR
    SUMMARY = "A refused frame; nothing was changed on the server."
    code: ErrorCode = wire(Choice("code", ErrorCode))
    message: str = wire(Text("message", description="for people, not for programs"))
    ref: str | None = wire(
        Text(
            "ref",
            default=None,
            # Absent when there is nothing to name (docs/protocol.md §3); a v1.1 server
            # sent null, which readers still take.
            nullable=True,
            description="the refused frame's messageId when well formed, "
            "else its action; absent when there is nothing to name",
        )
    )
    retry_after: int | None = wire(
        Integer(
            "retryAfter",
            low=1,
            high=MAX_SENT_AT,
            default=None,
            description="with RATE_LIMITED and QUEUE_FULL only: ms to wait before sending the "
            "same frame again",
        )
    )
    devices: int | None = wire(
        _list_version(
            "devices",
            "with STALE_DEVICES only: the recipient's device-list version the server holds",
        )
    )
    self_devices: int | None = wire(
        _list_version(
            "selfDevices",
            "with STALE_DEVICES only: the sender's own device-list version the server holds",
        )
    )

    def check(self) -> None:
        if self.retry_after is not None and self.code not in _RETRY_AFTER_CODES:
            raise BadRequest("retryAfter: only with RATE_LIMITED or QUEUE_FULL")
        if self.retry_after is None and self.code in _RETRY_AFTER_REQUIRED:
            raise BadRequest(f"retryAfter: required with {self.code.value}")
        stale = self.code is ErrorCode.STALE_DEVICES
        for name, value in (("devices", self.devices), ("selfDevices", self.self_devices)):
            if stale and value is None:
                raise BadRequest(f"{name}: required with STALE_DEVICES")
            if not stale and value is not None:
                raise BadRequest(f"{name}: only with STALE_DEVICES")

    @classmethod
    def schema(cls) -> Schema:
        def code_in(codes: Sequence[ErrorCode]) -> Schema:
            return {"properties": {"code": {"enum": [code.value for code in codes]}}}

        schema = super().schema()
        schema["allOf"] = [
            {"if": code_in(_RETRY_AFTER_CODES), "else": _absent("retryAfter")},
            {"if": code_in(_RETRY_AFTER_REQUIRED), "then": {"required": ["retryAfter"]}},
            {
                "if": code_in([ErrorCode.STALE_DEVICES]),
                "then": {"required": ["devices", "selfDevices"]},
                "else": _absent("devices", "selfDevices"),
            },
        ]
        return schema


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
        SeenStoredFrame,
        BlockedFrame,
        SettingsFrame,
        DevicesFrame,
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
