"""Frames of PROTOCOL.md: what clients send (validated here, at the edge) and what we send back.

Inbound frames are frozen dataclasses read by `Fields`, which refuses the first missing or
malformed field with BAD_REQUEST (a body over the limit with TOO_LARGE). Fields the
protocol does not define (a `from`, say) are never read, so identity can only come from
the authorizer. Plain Python on purpose: a validation library costs every function's
cold start more than these eight small frames are worth (see docs/performance.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeGuard, TypeVar

from messenger.contract import (
    BASE64URL_PATTERN,
    BOX_NONCE_BYTES,
    MAX_BODY_BYTES,
    MAX_IDS_PER_FRAME,
    MAX_ITEM_ID_CHARS,
    MAX_PUSH_TOKEN_CHARS,
    MAX_SENT_AT,
    MESSAGE_ID_PATTERN,
    PUSH_PLATFORMS,
    PUSH_TOKEN_PATTERNS,
    USER_ID_PATTERN,
)
from messenger.errors import BadRequest, TooLarge

# Patterns are matched whole (`fullmatch`): `$` alone would let a trailing newline in.
_BASE64URL = re.compile(BASE64URL_PATTERN)
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)
_PUSH_TOKENS = {platform: re.compile(p) for platform, p in PUSH_TOKEN_PATTERNS.items()}

USER_ID_RULE = "a user id: 1-64 characters of A-Z a-z 0-9 _ . -"
MESSAGE_ID_RULE = "a messageId: 8-64 characters of A-Z a-z 0-9 _ -"
ITEM_ID_RULE = f"an item id: a string of 1-{MAX_ITEM_ID_CHARS} characters"


def is_base64url(value: str) -> bool:
    """Unpadded base64url: the alphabet only, and a length some byte string encodes to."""
    return _BASE64URL.fullmatch(value) is not None and len(value) % 4 != 1


def b64url_decode(value: str) -> bytes:
    """Decode base64url without padding; raise ValueError on anything else."""
    if not is_base64url(value):
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url without padding") from error


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decoded_length(value: str) -> int:
    return len(value) * 3 // 4


def is_message_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _MESSAGE_ID.fullmatch(value) is not None


def is_user_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None


def is_item_id(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_ITEM_ID_CHARS


class Fields:
    """One frame's fields, each read with its rule; the first broken rule is refused."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def _value(self, name: str) -> Any:
        if name not in self._document:
            raise BadRequest(f"{name}: required")
        return self._document[name]

    def text(self, name: str, *, max_chars: int | None = None) -> str:
        value = self._value(name)
        if not isinstance(value, str):
            raise BadRequest(f"{name}: must be a string")
        if not value:
            raise BadRequest(f"{name}: must not be empty")
        if max_chars is not None and len(value) > max_chars:
            raise BadRequest(f"{name}: must be at most {max_chars} characters")
        return value

    def _one(self, name: str, valid: Callable[[object], bool], rule: str) -> str:
        value = self._value(name)
        if not valid(value):
            raise BadRequest(f"{name}: must be {rule}")
        return str(value)

    def user_id(self, name: str) -> str:
        return self._one(name, is_user_id, USER_ID_RULE)

    def message_id(self, name: str) -> str:
        return self._one(name, is_message_id, MESSAGE_ID_RULE)

    def integer(self, name: str, *, low: int, high: int) -> int:
        value = self._value(name)
        # bool is an int to Python, never to JSON; 1.0 and "1" are not integers either.
        if type(value) is not int or not low <= value <= high:
            raise BadRequest(f"{name}: must be an integer from {low} to {high}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._document.get(name, default)
        if type(value) is not bool:
            raise BadRequest(f"{name}: must be true or false")
        return value

    def listing(self, name: str, valid: Callable[[object], bool], rule: str) -> list[str]:
        """A JSON array of 1 to MAX_IDS_PER_FRAME items, each `valid`."""
        values = self._value(name)
        if type(values) is not list or not 1 <= len(values) <= MAX_IDS_PER_FRAME:
            raise BadRequest(f"{name}: must be a list of 1 to {MAX_IDS_PER_FRAME} items")
        for index, value in enumerate(values):
            if not valid(value):
                raise BadRequest(f"{name}.{index}: must be {rule}")
        return values

    def user_ids(self, name: str) -> list[str]:
        return self.listing(name, is_user_id, USER_ID_RULE)

    def message_ids(self, name: str) -> list[str]:
        return self.listing(name, is_message_id, MESSAGE_ID_RULE)

    def item_ids(self, name: str) -> list[str]:
        return self.listing(name, is_item_id, ITEM_ID_RULE)

    def ciphertext(self, name: str) -> str:
        value = self.text(name)
        if not is_base64url(value):
            raise BadRequest(f"{name}: must be base64url without padding")
        if decoded_length(value) > MAX_BODY_BYTES:
            raise TooLarge(f"{name} is over {MAX_BODY_BYTES} bytes")
        return value

    def box_nonce(self, name: str) -> str:
        value = self.text(name)
        if not is_base64url(value) or decoded_length(value) != BOX_NONCE_BYTES:
            raise BadRequest(f"{name}: must be {BOX_NONCE_BYTES} bytes in base64url")
        return value


class Frame:
    """An inbound frame: its `action`, and how its fields are read."""

    ACTION: ClassVar[str]

    @classmethod
    def read(cls: type[F], fields: Fields) -> F:
        return cls()  # frames with no field but `action`


F = TypeVar("F", bound=Frame)


@dataclass(frozen=True)
class SendMessage(Frame):
    ACTION: ClassVar[str] = "sendMessage"
    message_id: str
    to: str
    body: str
    nonce: str
    sent_at: int

    @classmethod
    def read(cls, fields: Fields) -> SendMessage:
        body = fields.ciphertext("body")  # first: an oversize body is TOO_LARGE, whatever else
        return cls(
            message_id=fields.message_id("messageId"),
            to=fields.user_id("to"),
            body=body,
            nonce=fields.box_nonce("nonce"),
            sent_at=fields.integer("sentAt", low=0, high=MAX_SENT_AT),
        )


@dataclass(frozen=True)
class Ack(Frame):
    ACTION: ClassVar[str] = "ack"
    ids: list[str]

    @classmethod
    def read(cls, fields: Fields) -> Ack:
        return cls(ids=fields.item_ids("ids"))


@dataclass(frozen=True)
class MarkSeen(Frame):
    ACTION: ClassVar[str] = "markSeen"
    to: str
    message_ids: list[str]

    @classmethod
    def read(cls, fields: Fields) -> MarkSeen:
        return cls(to=fields.user_id("to"), message_ids=fields.message_ids("messageIds"))


@dataclass(frozen=True)
class Sync(Frame):
    ACTION: ClassVar[str] = "sync"


@dataclass(frozen=True)
class GetPresence(Frame):
    ACTION: ClassVar[str] = "getPresence"
    user_ids: list[str]
    subscribe: bool = False

    @classmethod
    def read(cls, fields: Fields) -> GetPresence:
        return cls(
            user_ids=fields.user_ids("userIds"), subscribe=fields.flag("subscribe", default=False)
        )


@dataclass(frozen=True)
class GetKeys(Frame):
    ACTION: ClassVar[str] = "getKeys"
    user_id: str

    @classmethod
    def read(cls, fields: Fields) -> GetKeys:
        return cls(user_id=fields.user_id("userId"))


@dataclass(frozen=True)
class Ping(Frame):
    ACTION: ClassVar[str] = "ping"


@dataclass(frozen=True)
class RegisterPush(Frame):
    ACTION: ClassVar[str] = "registerPush"
    platform: str
    token: str

    @classmethod
    def read(cls, fields: Fields) -> RegisterPush:
        platform = fields.text("platform")
        if platform not in PUSH_PLATFORMS:
            raise BadRequest(f"platform: must be one of {', '.join(PUSH_PLATFORMS)}")
        token = fields.text("token", max_chars=MAX_PUSH_TOKEN_CHARS)
        # Checked here so that a token SNS would refuse never reaches SNS.
        pattern = _PUSH_TOKENS.get(platform)
        if pattern and not pattern.fullmatch(token):
            raise BadRequest(f"token: not a {platform} device token")
        return cls(platform=platform, token=token)


FRAME_MODELS: dict[str, type[Frame]] = {
    model.ACTION: model
    for model in (SendMessage, Ack, MarkSeen, Sync, GetPresence, GetKeys, Ping, RegisterPush)
}


def load_json(body: str | None) -> Any:
    """The frame as JSON, or BadRequest. Deep nesting and bad UTF-8 are bad requests too."""
    if body is None or body == "":
        raise BadRequest("frame is empty")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadRequest("frame is not JSON") from error


def reference_of(document: Any) -> str | None:
    """PROTOCOL.md's `ref`: the frame's messageId when well formed, else its action."""
    if not isinstance(document, dict):
        return None
    message_id = document.get("messageId")
    if is_message_id(message_id):
        return str(message_id)
    action = document.get("action")
    if isinstance(action, str) and len(action) <= 64:
        return action
    return None


def parse_frame(model: type[F], document: Any) -> F:
    """Read a decoded frame as `model`: BadRequest (or TooLarge) names what is wrong."""
    if not isinstance(document, dict):
        raise BadRequest("frame must be a JSON object")
    if document.get("action") != model.ACTION:
        raise BadRequest(f"action: must be {model.ACTION!r}")
    return model.read(Fields(document))


# --- Server -> client frames ---------------------------------------------------------


def ack_frame(message_id: str, server_ts: int) -> dict[str, Any]:
    return {"type": "ack", "messageId": message_id, "status": "sent", "serverTs": server_ts}


def error_frame(code: str, message: str, ref: str | None) -> dict[str, Any]:
    """`ref` is always present: null when the frame had no usable messageId or action."""
    return {"type": "error", "code": code, "message": message, "ref": ref}


def presence_frame(users: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "presence", "users": users}


def keys_frame(user_id: str, sign_key: str, box_key: str) -> dict[str, Any]:
    return {"type": "keys", "userId": user_id, "signKey": sign_key, "boxKey": box_key}


def sync_done_frame(count: int) -> dict[str, Any]:
    return {"type": "syncDone", "count": count}


def push_registered_frame(platform: str) -> dict[str, Any]:
    return {"type": "pushRegistered", "platform": platform}


PONG_FRAME: dict[str, Any] = {"type": "pong"}
