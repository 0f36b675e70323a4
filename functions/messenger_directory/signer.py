"""The directory key (docs/protocol.md §6): what signs every published directory.

    signer = KmsDirectorySigner(kms_client, key_id)     # on AWS: the key never leaves KMS
    signer = SeedDirectorySigner(SigningKey.generate())  # `messenger local`, tests
    directory.signed_by(signer.sign_digest)

On AWS the key is a KMS key of spec ECC_NIST_EDWARDS25519. KMS signs it with
`ED25519_SHA_512` and MessageType RAW: pure Ed25519 (RFC 8032) over the bytes it is given,
here the 64-byte SHA-512 digest of the §6 signing text, which is exactly what a client
verifies. (`ED25519_PH_SHA_512` with MessageType DIGEST would be Ed25519ph, a different
signature that a plain Ed25519 verify refuses; RAW messages may be up to 4,096 bytes, and
the digest is 64.) Only the directory function's role may call kms:Sign on it.

moto does not emulate Ed25519 KMS keys, so the publisher's path is tested with a key the
test holds (`SeedDirectorySigner`) and the KMS request's shape with botocore's Stubber.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from messenger_protocol.encoding import b64url_encode
from messenger_protocol.limits import DIRECTORY_DIGEST_BYTES, KEY_BYTES, SIGNATURE_BYTES

if TYPE_CHECKING:
    from nacl.signing import SigningKey

KMS_KEY_SPEC = "ECC_NIST_EDWARDS25519"
KMS_SIGNING_ALGORITHM = "ED25519_SHA_512"
KMS_MESSAGE_TYPE = "RAW"
# An Ed25519 SubjectPublicKeyInfo (RFC 8410), as KMS's GetPublicKey gives it: this fixed
# 12-byte header, then the 32-byte key.
ED25519_SPKI_HEADER = bytes.fromhex("302a300506032b6570032100")


class DirectorySigner(Protocol):
    """Signs the 64-byte digest of a directory (§6) with the deployment's directory key."""

    def sign_digest(self, digest: bytes) -> bytes: ...

    def public_key(self) -> str:
        """The directory's public key, base64url: what clients are given."""
        ...


def _checked_digest(digest: bytes) -> bytes:
    if len(digest) != DIRECTORY_DIGEST_BYTES:
        raise ValueError(f"a directory digest is {DIRECTORY_DIGEST_BYTES} bytes")
    return digest


class SeedDirectorySigner:
    """A directory key held in memory: `messenger local` (kept with its state) and tests."""

    def __init__(self, signing_key: SigningKey) -> None:
        self._key = signing_key

    def sign_digest(self, digest: bytes) -> bytes:
        signature: bytes = self._key.sign(_checked_digest(digest)).signature
        return signature

    def public_key(self) -> str:
        return b64url_encode(bytes(self._key.verify_key))


def raw_public_key(spki_der: bytes) -> bytes:
    """The 32-byte Ed25519 key out of KMS's DER SubjectPublicKeyInfo; ValueError otherwise."""
    if len(spki_der) != len(ED25519_SPKI_HEADER) + KEY_BYTES or not spki_der.startswith(
        ED25519_SPKI_HEADER
    ):
        raise ValueError("not an Ed25519 SubjectPublicKeyInfo")
    return spki_der[len(ED25519_SPKI_HEADER) :]


class KmsDirectorySigner:
    """The directory key in AWS KMS: signs there, the private half never leaves it."""

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms = kms
        self._key_id = key_id
        self._public_key: str | None = None

    def sign_digest(self, digest: bytes) -> bytes:
        answer = self._kms.sign(
            KeyId=self._key_id,
            Message=_checked_digest(digest),
            MessageType=KMS_MESSAGE_TYPE,
            SigningAlgorithm=KMS_SIGNING_ALGORITHM,
        )
        signature: bytes = answer["Signature"]
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError(f"KMS gave a {len(signature)}-byte signature, not an Ed25519 one")
        return signature

    def public_key(self) -> str:
        """Read from KMS once per container (a key's public half never changes)."""
        if self._public_key is None:
            answer = self._kms.get_public_key(KeyId=self._key_id)
            self._public_key = b64url_encode(raw_public_key(answer["PublicKey"]))
        return self._public_key
