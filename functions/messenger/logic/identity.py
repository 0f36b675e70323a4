"""Who a connection belongs to (the connect signature of PROTOCOL.md §1) and users' keys."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from messenger.contract import (
    CONNECT_NONCE_PATTERN,
    CONNECT_NONCE_TTL_SECONDS,
    CONNECT_SIGNING_PREFIX,
    CONNECT_WINDOW_SECONDS,
    KEY_BYTES,
    SIGNATURE_BYTES,
)
from messenger.dal.users import NonceReused, Profile, Users, UserTaken
from messenger.errors import AccessDenied, UnknownUser
from messenger.logic.clock import Clock
from messenger.models import b64url_decode, is_user_id, keys_frame

_NONCE = re.compile(CONNECT_NONCE_PATTERN)
_TS = re.compile(r"^[0-9]{1,12}$")


def connect_message(user_id: str, ts: str, nonce: str) -> bytes:
    """The bytes a client signs to connect."""
    return f"{CONNECT_SIGNING_PREFIX}\n{user_id}\n{ts}\n{nonce}".encode()


@dataclass(frozen=True)
class ConnectRequest:
    user_id: str
    ts: str
    nonce: str
    signature: bytes
    sign_key: str | None
    box_key: str | None
    # Which connection attempt this is (API Gateway's connectionId for the handshake).
    attempt: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def registers_keys(self) -> bool:
        return self.sign_key is not None


def _decode_exact(value: str, size: int, what: str) -> bytes:
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise AccessDenied(f"{what} is not base64url") from None
    if len(raw) != size:
        raise AccessDenied(f"{what} must be {size} bytes")
    return raw


def parse_connect_query(
    params: Mapping[str, Any] | None, attempt: str | None = None
) -> ConnectRequest:
    """Validate the connect query string; AccessDenied on anything missing or malformed."""
    params = params or {}

    def text(name: str) -> str | None:
        value = params.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise AccessDenied(f"{name} is malformed")
        return value

    user_id, ts, nonce, sig = text("userId"), text("ts"), text("nonce"), text("sig")
    if user_id is None or ts is None or nonce is None or sig is None:
        raise AccessDenied("userId, ts, nonce and sig are required")
    if not is_user_id(user_id):
        raise AccessDenied("userId is malformed")
    if not _TS.fullmatch(ts):
        raise AccessDenied("ts is malformed")
    if not _NONCE.fullmatch(nonce):
        raise AccessDenied("nonce is malformed")
    signature = _decode_exact(sig, SIGNATURE_BYTES, "sig")
    sign_key, box_key = text("signKey"), text("boxKey")
    if (sign_key is None) != (box_key is None):
        raise AccessDenied("signKey and boxKey come together")
    if sign_key is not None and box_key is not None:
        _decode_exact(sign_key, KEY_BYTES, "signKey")
        _decode_exact(box_key, KEY_BYTES, "boxKey")
    request = ConnectRequest(user_id, ts, nonce, signature, sign_key, box_key)
    # Without an attempt id, a fresh random one: it can never match an earlier use.
    return replace(request, attempt=attempt) if attempt else request


def signature_valid(request: ConnectRequest, sign_key: str) -> bool:
    # Imported here: only the authorizer verifies, so no other function loads libsodium.
    from nacl.exceptions import BadSignatureError, CryptoError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(b64url_decode(sign_key)).verify(
            connect_message(request.user_id, request.ts, request.nonce), request.signature
        )
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


class Identity:
    def __init__(self, users: Users, clock: Clock) -> None:
        self._users = users
        self._clock = clock

    def authenticate(self, request: ConnectRequest) -> str:
        """The userId a connect request proves, registering a new user on first use.

        Nothing is written unless the request is accepted.
        """
        now_s = self._clock.now_s()
        if abs(now_s - int(request.ts)) > CONNECT_WINDOW_SECONDS:
            raise AccessDenied("ts is outside the accepted window")
        nonce_expires = now_s + CONNECT_NONCE_TTL_SECONDS
        profile = self._users.get_profile(request.user_id, consistent=True)
        if profile is None:
            profile = self._register(request, nonce_expires)
            if profile is None:
                return request.user_id  # registered, nonce spent in the same transaction
        if request.registers_keys and (
            request.sign_key != profile.sign_key or request.box_key != profile.box_key
        ):
            raise AccessDenied("userId is registered with other keys")
        if not signature_valid(request, profile.sign_key):
            raise AccessDenied("signature does not verify")
        try:
            self._users.spend_nonce(
                request.user_id, request.nonce, nonce_expires, now_s, request.attempt
            )
        except NonceReused:
            raise AccessDenied("nonce was already used") from None
        return request.user_id

    def _register(self, request: ConnectRequest, nonce_expires: int) -> Profile | None:
        """Register the user. None when done; the winner's profile if someone was first."""
        if request.sign_key is None or request.box_key is None:
            raise AccessDenied("unknown user and no keys given")
        if not signature_valid(request, request.sign_key):
            raise AccessDenied("signature does not verify")
        profile = Profile(
            user_id=request.user_id,
            sign_key=request.sign_key,
            box_key=request.box_key,
            created_at=self._clock.now_ms(),
        )
        try:
            self._users.register_with_nonce(profile, request.nonce, nonce_expires, request.attempt)
        except NonceReused:
            raise AccessDenied("nonce was already used") from None
        except UserTaken:
            winner = self._users.get_profile(request.user_id, consistent=True)
            if winner is None:
                raise AccessDenied("registration raced; try again") from None
            return winner
        return None

    def keys_of(self, user_id: str) -> dict[str, Any]:
        profile = self._users.get_profile(user_id)
        if profile is None:
            raise UnknownUser(f"no user {user_id!r}")
        return keys_frame(profile.user_id, profile.sign_key, profile.box_key)
