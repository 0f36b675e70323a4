"""base64url without padding (RFC 4648 §5), and the id rules of §1-§3, §6 and §8."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TypeGuard

from messenger_protocol.limits import (
    BASE64URL_PATTERN,
    CONNECT_NONCE_PATTERN,
    CURSOR_PATTERN,
    DEVICE_ID_PATTERN,
    EPOCH_PATTERN,
    MAX_ITEM_ID_CHARS,
    MESSAGE_ID_PATTERN,
    USER_ID_PATTERN,
)

_BASE64URL = re.compile(BASE64URL_PATTERN)
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)
_CONNECT_NONCE = re.compile(CONNECT_NONCE_PATTERN)
_CURSOR = re.compile(CURSOR_PATTERN)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_EPOCH = re.compile(EPOCH_PATTERN)

USER_ID_RULE = "a user id: 1-64 characters of a-z 0-9 _ . -, the first a letter or a digit"
MESSAGE_ID_RULE = "a messageId: 8-64 characters of A-Z a-z 0-9 _ -"
ITEM_ID_RULE = f"an item id: a string of 1-{MAX_ITEM_ID_CHARS} characters"
CURSOR_RULE = "a cursor from a syncDone: 1-256 characters of A-Z a-z 0-9 _ -"
DEVICE_ID_RULE = "a device id: 1-32 characters of a-z 0-9 _ -"
EPOCH_RULE = "an epoch: 1-64 characters of A-Z a-z 0-9 _ . : # -"


def is_base64url(value: str) -> bool:
    """Unpadded base64url: the alphabet only, and a length some byte string encodes to."""
    return _BASE64URL.fullmatch(value) is not None and len(value) % 4 != 1


def b64url_decode(value: str) -> bytes:
    """Decode base64url without padding; ValueError on anything else."""
    if not is_base64url(value):
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url without padding") from error


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decoded_length(value: str) -> int:
    """How many bytes a base64url string (already checked) decodes to."""
    return len(value) * 3 // 4


def is_user_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None


def is_message_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _MESSAGE_ID.fullmatch(value) is not None


def is_item_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 1 <= len(value) <= MAX_ITEM_ID_CHARS


def is_cursor(value: object) -> TypeGuard[str]:
    """Shaped like a sync cursor; only the server can tell whether it gave it out."""
    return isinstance(value, str) and _CURSOR.fullmatch(value) is not None


def is_connect_nonce(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _CONNECT_NONCE.fullmatch(value) is not None


def is_device_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _DEVICE_ID.fullmatch(value) is not None


def is_epoch(value: object) -> TypeGuard[str]:
    """Shaped like a cell's epoch (§6): what the directory and syncDone carry."""
    return isinstance(value, str) and _EPOCH.fullmatch(value) is not None
