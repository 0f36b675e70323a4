"""Connecting (§1): the signed connect message, and the query string that carries it.

    query = signed_connect_query(signing_key, "alice", now=time.time(), keys=(sign, box))
    url = with_query("wss://HOST/STAGE", query)
    ConnectQuery.parse(params).verifies(registered_sign_key)   # the server's side

Signing and verifying need libsodium (PyNaCl); it is imported when first used, so that
code that only builds frames never loads it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from messenger_protocol.encoding import b64url_decode, b64url_encode, is_connect_nonce, is_user_id
from messenger_protocol.errors import InvalidConnect
from messenger_protocol.limits import CONNECT_SIGNING_PREFIX, KEY_BYTES, SIGNATURE_BYTES, TS_PATTERN
from messenger_protocol.names import QueryParam

if TYPE_CHECKING:
    from nacl.signing import SigningKey

_TS = re.compile(TS_PATTERN)
# 32 random bytes: 43 characters of [A-Za-z0-9_-], inside the nonce rule (16-64).
_NONCE_BYTES = 32
# What API Gateway requires before it calls the authorizer at all.
REQUIRED_PARAMS = (QueryParam.USER_ID, QueryParam.TS, QueryParam.NONCE, QueryParam.SIG)


def connect_message(user_id: str, ts: str, nonce: str) -> bytes:
    """The bytes a client signs to connect."""
    return f"{CONNECT_SIGNING_PREFIX}\n{user_id}\n{ts}\n{nonce}".encode()


def new_connect_nonce() -> str:
    return secrets.token_urlsafe(_NONCE_BYTES)


def signed_connect_query(
    signing_key: SigningKey,
    user_id: str,
    *,
    now: float,
    nonce: str | None = None,
    keys: tuple[str, str] | None = None,
) -> dict[str, str]:
    """A freshly signed connect query; `keys` (signKey, boxKey, base64url) register."""
    ts = str(int(now))
    nonce = nonce or new_connect_nonce()
    signature = signing_key.sign(connect_message(user_id, ts, nonce)).signature
    query = {
        QueryParam.USER_ID.value: user_id,
        QueryParam.TS.value: ts,
        QueryParam.NONCE.value: nonce,
        QueryParam.SIG.value: b64url_encode(signature),
    }
    if keys is not None:
        query[QueryParam.SIGN_KEY.value], query[QueryParam.BOX_KEY.value] = keys
    return query


def with_query(url: str, query: Mapping[str, str]) -> str:
    """`url` with the query string appended."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(query)}"


def _exact_bytes(value: str, size: int, what: str) -> bytes:
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise InvalidConnect(f"{what} is not base64url") from None
    if len(raw) != size:
        raise InvalidConnect(f"{what} must be {size} bytes")
    return raw


@dataclass(frozen=True)
class ConnectQuery:
    """A connect query string, every parameter well formed (not yet verified)."""

    user_id: str
    ts: str
    nonce: str
    signature: bytes
    sign_key: str | None = None
    box_key: str | None = None

    @property
    def registers_keys(self) -> bool:
        return self.sign_key is not None

    @property
    def message(self) -> bytes:
        return connect_message(self.user_id, self.ts, self.nonce)

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None) -> ConnectQuery:
        """Validate the query string; InvalidConnect names what is missing or malformed."""
        params = params or {}

        def text(name: QueryParam) -> str | None:
            value = params.get(name.value)
            if value is None:
                return None
            if not isinstance(value, str):
                raise InvalidConnect(f"{name.value} is malformed")
            return value

        user_id, ts = text(QueryParam.USER_ID), text(QueryParam.TS)
        nonce, sig = text(QueryParam.NONCE), text(QueryParam.SIG)
        if user_id is None or ts is None or nonce is None or sig is None:
            raise InvalidConnect("userId, ts, nonce and sig are required")
        if not is_user_id(user_id):
            raise InvalidConnect("userId is malformed")
        if not _TS.fullmatch(ts):
            raise InvalidConnect("ts is malformed")
        if not is_connect_nonce(nonce):
            raise InvalidConnect("nonce is malformed")
        signature = _exact_bytes(sig, SIGNATURE_BYTES, "sig")
        sign_key, box_key = text(QueryParam.SIGN_KEY), text(QueryParam.BOX_KEY)
        if (sign_key is None) != (box_key is None):
            raise InvalidConnect("signKey and boxKey come together")
        if sign_key is not None and box_key is not None:
            _exact_bytes(sign_key, KEY_BYTES, "signKey")
            _exact_bytes(box_key, KEY_BYTES, "boxKey")
        return cls(user_id, ts, nonce, signature, sign_key, box_key)

    def verifies(self, sign_key: str) -> bool:
        """Whether the signature verifies against a signKey (base64url)."""
        from nacl.exceptions import BadSignatureError, CryptoError
        from nacl.signing import VerifyKey

        try:
            VerifyKey(b64url_decode(sign_key)).verify(self.message, self.signature)
        except (BadSignatureError, CryptoError, ValueError, TypeError):
            return False
        return True


def query_schema() -> dict[str, Any]:
    """The connect query's parameters as a JSON Schema (AsyncAPI's ws binding)."""
    from messenger_protocol.limits import CONNECT_NONCE_PATTERN, USER_ID_PATTERN

    key = {
        "type": "string",
        "pattern": r"^[A-Za-z0-9_-]{43}$",
        "description": f"{KEY_BYTES} bytes, base64url; only on a user's first connection",
    }
    return {
        "type": "object",
        "properties": {
            QueryParam.USER_ID.value: {"type": "string", "pattern": USER_ID_PATTERN},
            QueryParam.TS.value: {
                "type": "string",
                "pattern": TS_PATTERN,
                "description": "Unix time in seconds, within ±300 s",
            },
            QueryParam.NONCE.value: {
                "type": "string",
                "pattern": CONNECT_NONCE_PATTERN,
                "description": "random; a (userId, nonce) is accepted once",
            },
            QueryParam.SIG.value: {
                "type": "string",
                "pattern": r"^[A-Za-z0-9_-]{86}$",
                "description": f"Ed25519 signature ({SIGNATURE_BYTES} bytes, base64url) over "
                f'"{CONNECT_SIGNING_PREFIX}\\n" + userId + "\\n" + ts + "\\n" '
                "+ nonce",
            },
            QueryParam.SIGN_KEY.value: {
                **key,
                "description": "Ed25519 verify key, " + key["description"],
            },
            QueryParam.BOX_KEY.value: {
                **key,
                "description": "Curve25519 public key, " + key["description"],
            },
        },
        "required": [param.value for param in REQUIRED_PARAMS],
    }
