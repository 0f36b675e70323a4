"""Print a signed connect URL (docs/protocol.md §1), for clients that cannot sign: wscat.

    python -m messenger_local.signed_url alice
    node_modules/.bin/wscat -c "$(python -m messenger_local.signed_url alice)"

The user's keys are made on first use and kept in KEY_DIR/<user>.json (default
~/.messenger-local/keys). Every URL carries the public keys, so the first one
registers the user and later ones match the registration. A URL is good once
(its nonce), within 5 minutes of being made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from messenger_protocol.connect import canonical_endpoint, signed_connect_query, with_query
from messenger_protocol.encoding import USER_ID_RULE, b64url_decode, b64url_encode, is_user_id

DEFAULT_URL = "ws://127.0.0.1:8080/local"
DEFAULT_KEY_DIR = Path.home() / ".messenger-local" / "keys"


@dataclass(frozen=True)
class LocalKeys:
    """A user's private keys, as this helper stores them."""

    user_id: str
    signing_key: SigningKey
    box_key: PrivateKey

    @classmethod
    def generate(cls, user_id: str) -> LocalKeys:
        return cls(user_id, SigningKey.generate(), PrivateKey.generate())

    def to_json(self) -> str:
        return json.dumps(
            {
                "userId": self.user_id,
                "signingKey": b64url_encode(bytes(self.signing_key)),
                "boxKey": b64url_encode(bytes(self.box_key)),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LocalKeys:
        document = json.loads(text)
        return cls(
            document["userId"],
            SigningKey(b64url_decode(document["signingKey"])),
            PrivateKey(b64url_decode(document["boxKey"])),
        )


def load_or_create_keys(user_id: str, key_dir: Path) -> LocalKeys:
    """The user's keys from key_dir, made (and saved, readable by the owner only) if new."""
    path = key_dir / f"{user_id}.json"
    if path.exists():
        return LocalKeys.from_json(path.read_text())
    keys = LocalKeys.generate(user_id)
    key_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(keys.to_json())
    return keys


def signed_url(base_url: str, keys: LocalKeys, *, ts: int | None = None) -> str:
    """`base_url` with a fresh connect query signed for it (v1.2 `aud`, docs/protocol.md
    §1), public keys included."""
    public = (
        b64url_encode(bytes(keys.signing_key.verify_key)),
        b64url_encode(bytes(keys.box_key.public_key)),
    )
    query = signed_connect_query(
        keys.signing_key,
        keys.user_id,
        now=time.time() if ts is None else ts,
        keys=public,
        aud=canonical_endpoint(base_url),
    )
    return with_query(base_url, query)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m messenger_local.signed_url",
        description="Print a signed WebSocket connect URL for a local user (for wscat).",
    )
    parser.add_argument("user", help=f"the userId ({USER_ID_RULE})")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the stage URL ({DEFAULT_URL})")
    parser.add_argument(
        "--key-dir",
        type=Path,
        default=DEFAULT_KEY_DIR,
        help=f"where the user's keys live ({DEFAULT_KEY_DIR})",
    )
    args = parser.parse_args(argv)
    if not is_user_id(args.user):
        parser.error(f"{args.user!r} is not a valid userId")
    print(signed_url(args.url, load_or_create_keys(args.user, args.key_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
