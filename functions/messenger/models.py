"""Frames of PROTOCOL.md: what clients send (validated here, at the edge) and what we send back.

Every inbound model ignores fields the protocol does not define (a `from`, say), so
identity can only come from the authorizer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from messenger.contract import (
    BASE64URL_PATTERN,
    BOX_NONCE_BYTES,
    MAX_BODY_BYTES,
    MAX_IDS_PER_FRAME,
    MAX_ITEM_ID_CHARS,
    MESSAGE_ID_PATTERN,
    PUSH_PLATFORMS,
    PUSH_TOKEN_PATTERNS,
    USER_ID_PATTERN,
)
from messenger.errors import BadRequest, TooLarge

UserId = Annotated[StrictStr, Field(pattern=USER_ID_PATTERN)]
MessageId = Annotated[StrictStr, Field(pattern=MESSAGE_ID_PATTERN)]
ItemId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ITEM_ID_CHARS)]

_BASE64URL = re.compile(BASE64URL_PATTERN)
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)


def b64url_decode(value: str) -> bytes:
    """Decode base64url without padding; raise ValueError on anything else."""
    if not _BASE64URL.match(value) or len(value) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url without padding") from error


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decoded_length(value: str) -> int:
    return len(value) * 3 // 4


class Frame(BaseModel):
    # Schemas are built on first use: each function validates only its own frame.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class SendMessage(Frame):
    action: Literal["sendMessage"]
    message_id: MessageId = Field(alias="messageId")
    to: UserId
    body: StrictStr
    nonce: StrictStr
    sent_at: Annotated[StrictInt, Field(ge=0, le=2**53)] = Field(alias="sentAt")

    @field_validator("body")
    @classmethod
    def _body_is_ciphertext(cls, body: str) -> str:
        if not _BASE64URL.match(body) or len(body) % 4 == 1:
            raise ValueError("body must be base64url without padding")
        if not body:
            raise ValueError("body must not be empty")
        if decoded_length(body) > MAX_BODY_BYTES:
            raise PydanticCustomError(
                "too_large", "body is over {limit} bytes", {"limit": MAX_BODY_BYTES}
            )
        return body

    @field_validator("nonce")
    @classmethod
    def _nonce_is_24_bytes(cls, nonce: str) -> str:
        if len(b64url_decode(nonce)) != BOX_NONCE_BYTES:
            raise ValueError(f"nonce must be {BOX_NONCE_BYTES} bytes")
        return nonce


class Ack(Frame):
    action: Literal["ack"]
    ids: list[ItemId] = Field(min_length=1, max_length=MAX_IDS_PER_FRAME)


class MarkSeen(Frame):
    action: Literal["markSeen"]
    to: UserId
    message_ids: list[MessageId] = Field(
        alias="messageIds", min_length=1, max_length=MAX_IDS_PER_FRAME
    )


class Sync(Frame):
    action: Literal["sync"]


class GetPresence(Frame):
    action: Literal["getPresence"]
    user_ids: list[UserId] = Field(alias="userIds", min_length=1, max_length=MAX_IDS_PER_FRAME)
    subscribe: StrictBool = False


class GetKeys(Frame):
    action: Literal["getKeys"]
    user_id: UserId = Field(alias="userId")


class Ping(Frame):
    action: Literal["ping"]


class RegisterPush(Frame):
    action: Literal["registerPush"]
    platform: StrictStr
    token: Annotated[StrictStr, Field(min_length=1, max_length=4096)]

    @field_validator("platform")
    @classmethod
    def _platform_is_known(cls, platform: str) -> str:
        if platform not in PUSH_PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(PUSH_PLATFORMS)}")
        return platform

    @field_validator("token")
    @classmethod
    def _token_fits_platform(cls, token: str, info: ValidationInfo) -> str:
        # Checked here so that a token SNS would refuse never reaches SNS.
        platform = info.data.get("platform", "")
        pattern = PUSH_TOKEN_PATTERNS.get(platform)
        if pattern and not re.fullmatch(pattern, token):
            raise ValueError(f"token is not a {platform} device token")
        return token


FRAME_MODELS: dict[str, type[Frame]] = {
    "sendMessage": SendMessage,
    "ack": Ack,
    "markSeen": MarkSeen,
    "sync": Sync,
    "getPresence": GetPresence,
    "getKeys": GetKeys,
    "ping": Ping,
    "registerPush": RegisterPush,
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
    if isinstance(message_id, str) and _MESSAGE_ID.match(message_id):
        return message_id
    action = document.get("action")
    if isinstance(action, str) and len(action) <= 64:
        return action
    return None


F = TypeVar("F", bound=Frame)


def parse_frame(model: type[F], document: Any) -> F:
    """Validate a decoded frame against its model, mapping failures to protocol errors."""
    if not isinstance(document, dict):
        raise BadRequest("frame must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if any(problem["type"] == "too_large" for problem in problems):
            raise TooLarge(f"body is over {MAX_BODY_BYTES} bytes") from None
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "frame"
        raise BadRequest(f"{where}: {first['msg']}") from None


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
