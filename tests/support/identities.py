"""A test user: real NaCl keys and a correctly signed connect query (docs/protocol.md §1)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from nacl.public import Box, PrivateKey
from nacl.signing import SigningKey

from messenger_protocol.connect import signed_connect_query
from messenger_protocol.encoding import b64url_decode, b64url_encode


@dataclass
class TestUser:
    __test__ = False  # not a pytest test class

    user_id: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    box_key: PrivateKey = field(default_factory=PrivateKey.generate)

    @property
    def sign_key_b64(self) -> str:
        return b64url_encode(bytes(self.signing_key.verify_key))

    @property
    def box_key_b64(self) -> str:
        return b64url_encode(bytes(self.box_key.public_key))

    def connect_query(
        self,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        with_keys: bool = True,
        aud: str | None = None,
    ) -> dict[str, str]:
        """The query string of a signed connect, keys included unless told otherwise; with
        `aud` (the endpoint) in the v1.2 form, else in the v1.1 form."""
        keys = (self.sign_key_b64, self.box_key_b64) if with_keys else None
        return signed_connect_query(
            self.signing_key,
            self.user_id,
            now=time.time() if ts is None else ts,
            nonce=nonce,
            keys=keys,
            aud=aud,
        )

    def encrypt_for(self, peer: TestUser, text: str) -> tuple[str, str]:
        """(body, nonce) of a NaCl Box from this user to the peer, base64url."""
        nonce = secrets.token_bytes(24)
        box = Box(self.box_key, peer.box_key.public_key)
        ciphertext = box.encrypt(text.encode(), nonce).ciphertext
        return b64url_encode(ciphertext), b64url_encode(nonce)

    def decrypt_from(self, peer: TestUser, body: str, nonce: str) -> str:
        box = Box(self.box_key, peer.box_key.public_key)
        return box.decrypt(b64url_decode(body), b64url_decode(nonce)).decode()
