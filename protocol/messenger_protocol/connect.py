"""Connecting (§1): the signed connect message, and the query string that carries it.

    aud = canonical_endpoint("wss://HOST/STAGE")
    query = signed_connect_query(signing_key, "alice", now=time.time(), aud=aud)
    url = with_query(aud, query)
    parsed = ConnectQuery.parse(params)                      # the server's side:
    parsed.aud in my_endpoints and parsed.verifies(the device's registered signKey)

With `aud` the query is in the v1.2 form, the signature bound to the endpoint and the
device; without it, in the v1.1 form (device 1 only).

Signing and verifying need libsodium (PyNaCl); it is imported when first used, so that
code that only builds frames never loads it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from messenger_protocol.encoding import (
    b64url_decode,
    is_connect_nonce,
    is_device_id,
    is_user_id,
)
from messenger_protocol.errors import InvalidConnect
from messenger_protocol.limits import (
    BOUND_CONNECT_SIGNING_PREFIX,
    CONNECT_SIGNING_PREFIX,
    DEVICE_ID_PATTERN,
    KEY_BYTES,
    MAX_AUD_CHARS,
    PRIMARY_DEVICE_ID,
    SIGNATURE_BYTES,
    TS_PATTERN,
)
from messenger_protocol.names import QueryParam
from messenger_protocol.signatures import sign, verifies

if TYPE_CHECKING:
    from nacl.signing import SigningKey

_TS = re.compile(TS_PATTERN)
# 32 random bytes: 43 characters of [A-Za-z0-9_-], inside the nonce rule (16-64).
_NONCE_BYTES = 32
# What API Gateway requires before it calls the authorizer at all.
REQUIRED_PARAMS = (QueryParam.USER_ID, QueryParam.TS, QueryParam.NONCE, QueryParam.SIG)


# The port a WebSocket URL means when it names none.
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


def connect_message(user_id: str, ts: str, nonce: str) -> bytes:
    """The bytes a client signs to connect in the v1.1 form (device 1, no `aud`)."""
    return f"{CONNECT_SIGNING_PREFIX}\n{user_id}\n{ts}\n{nonce}".encode()


def bound_connect_message(user_id: str, device_id: str, ts: str, nonce: str, aud: str) -> bytes:
    """The bytes a device signs to connect in the v1.2 form: bound to the endpoint `aud`
    (as the query carries it, decoded) and to the device (`1` for the first device)."""
    return f"{BOUND_CONNECT_SIGNING_PREFIX}\n{user_id}\n{device_id}\n{ts}\n{nonce}\n{aud}".encode()


def canonical_endpoint(url: str) -> str:
    """The endpoint a WebSocket URL names, as `aud` carries it and a cell compares it
    (exactly, as a string): lowercase scheme and host, the port only if it is not the
    scheme's default, the path without a trailing slash, no query or fragment.
    ValueError for anything but a ws:// or wss:// URL with a host."""
    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL with a host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"an endpoint names no user: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = parts.port  # ValueError when it is not a port number
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def new_connect_nonce() -> str:
    return secrets.token_urlsafe(_NONCE_BYTES)


def signed_connect_query(
    signing_key: SigningKey,
    user_id: str,
    *,
    now: float,
    nonce: str | None = None,
    keys: tuple[str, str] | None = None,
    aud: str | None = None,
    device_id: str = PRIMARY_DEVICE_ID,
) -> dict[str, str]:
    """A freshly signed connect query; `keys` (signKey, boxKey, base64url) register.

    With `aud` (the endpoint, as `canonical_endpoint` gives it) the query is in the v1.2
    form, signed by the device `device_id` (its own signing key; device 1's is the
    account's). Without it, the v1.1 form, which only device 1 may use."""
    if aud is None and device_id != PRIMARY_DEVICE_ID:
        raise ValueError("a linked device connects only in the v1.2 form: give aud")
    ts = str(int(now))
    nonce = nonce or new_connect_nonce()
    if aud is None:
        message = connect_message(user_id, ts, nonce)
    else:
        message = bound_connect_message(user_id, device_id, ts, nonce, aud)
    query = {
        QueryParam.USER_ID.value: user_id,
        QueryParam.TS.value: ts,
        QueryParam.NONCE.value: nonce,
        QueryParam.SIG.value: sign(signing_key, message),
    }
    if device_id != PRIMARY_DEVICE_ID:
        query[QueryParam.DEVICE_ID.value] = device_id
    if aud is not None:
        query[QueryParam.AUD.value] = aud
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


def _is_aud(value: str) -> bool:
    """Shaped like an endpoint: a ws:// or wss:// URL, no whitespace. Whether it is this
    cell's is for the cell to say, comparing it with its own."""
    return (
        len(value) <= MAX_AUD_CHARS
        and value.startswith(("ws://", "wss://"))
        and not any(c.isspace() for c in value)
    )


@dataclass(frozen=True)
class ConnectQuery:
    """A connect query string, every parameter well formed (not yet verified)."""

    user_id: str
    ts: str
    nonce: str
    signature: bytes
    sign_key: str | None = None
    box_key: str | None = None
    # Which of the user's devices connects (§8): device 1 unless the query names another.
    device_id: str = PRIMARY_DEVICE_ID
    # The endpoint the signature is bound to; None: the v1.1 form.
    aud: str | None = None

    @property
    def registers_keys(self) -> bool:
        return self.sign_key is not None

    @property
    def is_bound(self) -> bool:
        """The v1.2 form: signed for one endpoint (`aud`) and one device."""
        return self.aud is not None

    @property
    def is_primary_device(self) -> bool:
        return self.device_id == PRIMARY_DEVICE_ID

    @property
    def message(self) -> bytes:
        """The signed bytes, in the form the query chose (`aud` selects v1.2)."""
        if self.aud is None:
            return connect_message(self.user_id, self.ts, self.nonce)
        return bound_connect_message(self.user_id, self.device_id, self.ts, self.nonce, self.aud)

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
        device_id, aud = text(QueryParam.DEVICE_ID), text(QueryParam.AUD)
        if device_id is not None and not is_device_id(device_id):
            raise InvalidConnect("deviceId is malformed")
        if aud is not None and not _is_aud(aud):
            raise InvalidConnect("aud is malformed")
        device_id = device_id or PRIMARY_DEVICE_ID
        if aud is None and device_id != PRIMARY_DEVICE_ID:
            raise InvalidConnect("a linked device connects only with aud (the v1.2 form)")
        return cls(user_id, ts, nonce, signature, sign_key, box_key, device_id, aud)

    def verifies(self, sign_key: str) -> bool:
        """Whether the signature verifies against a signKey (base64url): the user's for
        device 1, the device's own from the user's device list for a linked device."""
        return verifies(sign_key, self.message, self.signature)


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
                "description": f"Ed25519 signature ({SIGNATURE_BYTES} bytes, base64url). With "
                f'`aud` (v1.2), over "{BOUND_CONNECT_SIGNING_PREFIX}\\n" + userId + "\\n" + '
                'deviceId + "\\n" + ts + "\\n" + nonce + "\\n" + aud (deviceId 1 when '
                "absent), by the device's signKey; without it (v1.1, device 1 only), over "
                f'"{CONNECT_SIGNING_PREFIX}\\n" + userId + "\\n" + ts + "\\n" + nonce',
            },
            QueryParam.DEVICE_ID.value: {
                "type": "string",
                "pattern": DEVICE_ID_PATTERN,
                "description": "only for a linked device (§8), which needs `aud`: which of the "
                "user's devices connects; absent: device 1",
            },
            QueryParam.AUD.value: {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_AUD_CHARS,
                "pattern": r"^wss?://\S+$",
                "description": "the URL connected to, without its query (scheme, host, port "
                "unless the default, path without a trailing slash): selects the v1.2 "
                "signature, which binds it; a cell refuses (403) any endpoint not its own",
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
        # A linked device connects only in the v1.2 form.
        "if": {
            "required": [QueryParam.DEVICE_ID.value],
            "properties": {QueryParam.DEVICE_ID.value: {"not": {"const": PRIMARY_DEVICE_ID}}},
        },
        "then": {"required": [QueryParam.AUD.value]},
    }
