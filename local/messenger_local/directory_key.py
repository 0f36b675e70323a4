"""`messenger local`'s directory key (docs/protocol.md §6), kept with its state.

Clients remember the directory's public key (a CLI profile, a browser), so a stack that
keeps its state keeps its key too: DIR/directory-signing.key holds the 32-byte seed,
base64url, readable by its owner only. `--fresh` empties DIR, and so makes a new key;
a stack without a state directory makes one per run.
"""

from __future__ import annotations

import os
from pathlib import Path

from nacl.signing import SigningKey

from messenger_protocol.encoding import b64url_decode, b64url_encode

KEY_FILE = "directory-signing.key"


def kept_directory_key(state_dir: Path | None) -> SigningKey:
    """The key kept in `state_dir`, made and written there the first time."""
    if state_dir is None:
        return SigningKey.generate()
    path = state_dir / KEY_FILE
    if path.exists():
        return SigningKey(b64url_decode(path.read_text().strip()))
    key = SigningKey.generate()
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(b64url_encode(bytes(key)) + "\n")
    temporary.replace(path)
    return key
