"""A profile on disk: our identity (private keys), the peers' pinned public keys, history.

Layout, one directory per profile (mode 0700)::

    $MESSENGER_HOME/<profile>/                 (or $XDG_CONFIG_HOME/messenger/<profile>/,
        identity.json   our keys, mode 0600     or ~/.config/messenger/<profile>/)
        peers.json      pinned public keys of the people we talk to, mode 0600
        history.sqlite3 the local history (messenger_client.store), mode 0600

Private keys never leave `identity.json`: no repr, no log line, no exception shows them.
Peers' keys are pinned on first use (TOFU); a key that differs later is refused with
`KeyChanged` until the user re-verifies the new safety number and calls `trust`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from messenger_client.errors import (
    KeyChanged,
    KeystoreError,
    ProfileExists,
    ProfileNotFound,
    UnsafePermissions,
)
from messenger_protocol.devices import Device
from messenger_protocol.encoding import (
    DEVICE_ID_RULE,
    USER_ID_RULE,
    b64url_decode,
    b64url_encode,
    is_device_id,
    is_user_id,
)
from messenger_protocol.limits import KEY_BYTES, PRIMARY_DEVICE_ID

HOME_ENV = "MESSENGER_HOME"
IDENTITY_FILE = "identity.json"
PEERS_FILE = "peers.json"
HISTORY_FILE = "history.sqlite3"
# A directory name: never ".", ".." or hidden, as a user id never starts with a dot.
PROFILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_FORMAT_VERSION = 1
# Safety numbers are domain-separated so they can never collide with another hash use.
_FINGERPRINT_DOMAIN = b"messenger-fingerprint-v1\n"
_FINGERPRINT_GROUPS = 6

_PROFILE_NAME = re.compile(PROFILE_NAME_PATTERN)


def fingerprint(user_id: str, sign_key: bytes, box_key: bytes) -> str:
    """A short safety number for a user's two public keys: 6 groups of 5 digits.

    Both people compute it from what they hold (their own keys, or the pinned ones)
    and compare it by another channel; equal numbers mean no one swapped the keys.
    """
    digest = hashlib.sha256(
        _FINGERPRINT_DOMAIN + user_id.encode() + b"\n" + sign_key + box_key
    ).digest()
    groups = [
        f"{int.from_bytes(digest[i * 5 : (i + 1) * 5], 'big') % 100_000:05d}"
        for i in range(_FINGERPRINT_GROUPS)
    ]
    return " ".join(groups)


def check_user_id(user_id: str) -> None:
    """ValueError unless `user_id` is a user id: refused here, before the server would."""
    if not is_user_id(user_id):
        raise ValueError(f"{user_id!r} is not {USER_ID_RULE}")


def normalize_fingerprint(text: str) -> str:
    """A safety number as typed by a person (any spacing) in our canonical form."""
    digits = re.sub(r"\D", "", text)
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))


@dataclass(frozen=True)
class PeerKeys:
    """A user's two public keys as the protocol carries them (base64url)."""

    user_id: str
    sign_key: str
    box_key: str

    def __post_init__(self) -> None:
        if not is_user_id(self.user_id):
            raise ValueError("not a valid userId")
        for value in (self.sign_key, self.box_key):
            if len(b64url_decode(value)) != KEY_BYTES:
                raise ValueError(f"a public key must be {KEY_BYTES} bytes")

    @property
    def box_public_key(self) -> PublicKey:
        return PublicKey(b64url_decode(self.box_key))

    def fingerprint(self) -> str:
        return fingerprint(self.user_id, b64url_decode(self.sign_key), b64url_decode(self.box_key))


@dataclass(frozen=True)
class Identity:
    """Our user id, which of its devices we are (docs/protocol.md §8) and this device's
    private keys. Device 1's keys are the account's; a linked device has its own. Never
    printed: the keys are left out of repr."""

    user_id: str
    signing_key: SigningKey = field(repr=False)
    box_private_key: PrivateKey = field(repr=False)
    device_id: str = PRIMARY_DEVICE_ID

    @classmethod
    def generate(cls, user_id: str, device_id: str = PRIMARY_DEVICE_ID) -> Identity:
        check_user_id(user_id)
        if not is_device_id(device_id):
            raise ValueError(f"{device_id!r} is not {DEVICE_ID_RULE}")
        return cls(user_id, SigningKey.generate(), PrivateKey.generate(), device_id)

    @property
    def is_primary(self) -> bool:
        """Device 1: holds the account key, the only one that signs the device list."""
        return self.device_id == PRIMARY_DEVICE_ID

    @property
    def device(self) -> Device:
        """This device as the signed device list names it."""
        keys = self.public_keys
        return Device(device_id=self.device_id, sign_key=keys.sign_key, box_key=keys.box_key)

    @property
    def public_keys(self) -> PeerKeys:
        """This device's public keys (device 1: the account's)."""
        return PeerKeys(
            self.user_id,
            b64url_encode(bytes(self.signing_key.verify_key)),
            b64url_encode(bytes(self.box_private_key.public_key)),
        )

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    def fingerprint(self) -> str:
        return self.public_keys.fingerprint()

    def _to_document(self) -> dict[str, Any]:
        document = {
            "version": _FORMAT_VERSION,
            "userId": self.user_id,
            "signingKey": b64url_encode(bytes(self.signing_key)),
            "boxKey": b64url_encode(bytes(self.box_private_key)),
        }
        if not self.is_primary:
            document["deviceId"] = self.device_id
        return document

    @classmethod
    def _from_document(cls, document: Any) -> Identity:
        try:
            device_id = document.get("deviceId", PRIMARY_DEVICE_ID)
            if not is_device_id(device_id):
                raise ValueError("deviceId")
            return cls(
                document["userId"],
                SigningKey(b64url_decode(document["signingKey"])),
                PrivateKey(b64url_decode(document["boxKey"])),
                device_id,
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            # The original error could quote key material: say only what is wrong.
            raise KeystoreError("identity file is malformed") from None


def config_home(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """Where profiles live: $MESSENGER_HOME, else $XDG_CONFIG_HOME/messenger, else ~/.config."""
    env = os.environ if environ is None else environ
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV])
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "messenger"


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, atomically (never a moment at 0644)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnsafePermissions(
            f"{path} is accessible by other users (mode {mode:o}); run: chmod "
            f"{'700' if path.is_dir() else '600'} {path}"
        )


class PinnedKeys:
    """Peers' public keys, pinned on first use, in `peers.json` (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two processes on one profile (`read --watch` and `send`) may pin different
        # peers at once: read-modify-write under an exclusive lock loses neither.
        descriptor = os.open(
            self._path.with_name(f".{self._path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _load(self) -> dict[str, PeerKeys]:
        # Read afresh each time: another process on the same profile may have pinned.
        if not self._path.exists():
            return {}
        _check_private(self._path)
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
            return {
                user_id: PeerKeys(user_id, keys["signKey"], keys["boxKey"])
                for user_id, keys in document["peers"].items()
            }
        except (KeyError, TypeError, ValueError) as error:
            raise KeystoreError(f"{self._path} is malformed") from error

    def _save(self, peers: dict[str, PeerKeys]) -> None:
        document = {
            "version": _FORMAT_VERSION,
            "peers": {
                user_id: {"signKey": keys.sign_key, "boxKey": keys.box_key}
                for user_id, keys in sorted(peers.items())
            },
        }
        _write_private(self._path, json.dumps(document, indent=2) + "\n")

    def get(self, user_id: str) -> PeerKeys | None:
        """The pinned keys of a peer, or None if we never met them."""
        return self._load().get(user_id)

    def check_or_pin(self, offered: PeerKeys) -> PeerKeys:
        """Pin keys seen for the first time; accept the same keys; refuse changed ones."""
        with self._locked():
            peers = self._load()
            pinned = peers.get(offered.user_id)
            if pinned is None:
                peers[offered.user_id] = offered
                self._save(peers)
                return offered
        if pinned != offered:
            raise KeyChanged(offered.user_id, pinned, offered)
        return pinned

    def trust(self, offered: PeerKeys) -> None:
        """Replace a peer's pinned keys: only after the user re-verified the safety number."""
        with self._locked():
            peers = self._load()
            peers[offered.user_id] = offered
            self._save(peers)


class Profile:
    """One person's directory: identity, pinned peers and the local history."""

    def __init__(self, directory: Path, identity: Identity) -> None:
        self.directory = directory
        self.identity = identity
        self.pins = PinnedKeys(directory / PEERS_FILE)

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    @property
    def history_path(self) -> Path:
        return self.directory / HISTORY_FILE

    @staticmethod
    def directory_of(name: str, home: Path | None = None) -> Path:
        if not _PROFILE_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a valid profile name (1-64 of A-Z a-z 0-9 _ . -, "
                "the first a letter or a digit)"
            )
        return (home or config_home()) / name

    @classmethod
    def create(
        cls,
        name: str,
        user_id: str | None = None,
        home: Path | None = None,
        device_id: str = PRIMARY_DEVICE_ID,
    ) -> Profile:
        """Make a new identity (fresh Ed25519 and Curve25519 keys) in a new profile: the
        user's device 1, or with `device_id` a device to link to the user (§8)."""
        directory = cls.directory_of(name, home)
        if (directory / IDENTITY_FILE).exists():
            raise ProfileExists(f"profile {name!r} already has keys ({directory})")
        identity = Identity.generate(user_id or name, device_id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        _write_private(directory / IDENTITY_FILE, json.dumps(identity._to_document()) + "\n")
        return cls(directory, identity)

    @classmethod
    def load(cls, name: str, home: Path | None = None) -> Profile:
        """Open an existing profile, refusing one whose keys others could read."""
        directory = cls.directory_of(name, home)
        path = directory / IDENTITY_FILE
        if not path.exists():
            raise ProfileNotFound(f"no profile {name!r} in {directory.parent}: run init first")
        _check_private(directory)
        _check_private(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise KeystoreError(f"{path} is not JSON") from error
        return cls(directory, Identity._from_document(document))
