"""Ed25519 in base64url, for everything the protocol signs: the connect query (§1), the
directory (§6) and the device list (§8).

libsodium (PyNaCl) is imported when first used, so that code that only builds frames
never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger_protocol.encoding import b64url_decode, b64url_encode

if TYPE_CHECKING:
    from nacl.signing import SigningKey


def sign(signing_key: SigningKey, message: bytes) -> str:
    """The detached signature of `message`, in base64url."""
    return b64url_encode(signing_key.sign(message).signature)


def verifies(sign_key: str, message: bytes, signature: str | bytes) -> bool:
    """Whether `signature` (base64url, or raw bytes) of `message` verifies against
    `sign_key` (an Ed25519 verify key in base64url). Anything malformed is False."""
    from nacl.exceptions import BadSignatureError, CryptoError
    from nacl.signing import VerifyKey

    try:
        raw = b64url_decode(signature) if isinstance(signature, str) else signature
        VerifyKey(b64url_decode(sign_key)).verify(message, raw)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True
