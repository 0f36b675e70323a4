"""Linked devices (docs/protocol.md §8): the signed device list, link codes, and a message
sealed once for several devices.

    listing = DeviceList(user_id="bob", version=3, devices=[...]).sign(account_signing_key)
    listing.verifies(pinned_account_sign_key)            # a peer, or the server
    code = LinkCode(user_id="bob", device_id="laptop", sign_key=..., box_key=...).encode()
    LinkCode.decode(code).device()                       # device 1 adds it to its list
    sealed = seal_for_devices(plaintext, my_box_key, their_devices, my_other_devices)

Signing and sealing need libsodium (PyNaCl); it is imported when first used, so that
code that only reads and builds frames never loads it.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.errors import BadRequest, CannotOpen, InvalidLinkCode
from messenger_protocol.fields import (
    DEVICE_ID,
    USER_ID,
    FixedBytes,
    Integer,
    One,
    Records,
    Schema,
    wire,
)
from messenger_protocol.limits import (
    BOX_NONCE_BYTES,
    DEVICES_SIGNING_PREFIX,
    KEY_BYTES,
    LINK_CODE_PREFIX,
    MAX_DEVICES,
    MAX_LINK_CODE_CHARS,
    MAX_VERSION,
    PRIMARY_DEVICE_ID,
    SECRET_KEY_BYTES,
    SIGNATURE_BYTES,
    WRAPPED_KEY_BYTES,
)
from messenger_protocol.records import Record, to_json
from messenger_protocol.signatures import sign, verifies

if TYPE_CHECKING:
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey


@dataclasses.dataclass(frozen=True)
class Device(Record):
    """One device of a user: its id and its own public keys."""

    device_id: str = wire(One("deviceId", DEVICE_ID, description="unique in its user's list"))
    sign_key: str = wire(
        FixedBytes(
            "signKey",
            KEY_BYTES,
            description="the device's Ed25519 verify key (device 1: the account key)",
        )
    )
    box_key: str = wire(
        FixedBytes("boxKey", KEY_BYTES, description="the device's Curve25519 public key")
    )

    @property
    def is_primary(self) -> bool:
        return self.device_id == PRIMARY_DEVICE_ID


def check_devices(version: int, devices: Sequence[Device]) -> None:
    """The limits of §8 on a list of devices; BadRequest naming the broken one."""
    ids = [device.device_id for device in devices]
    repeated = sorted({device_id for device_id in ids if ids.count(device_id) > 1})
    if repeated:
        raise BadRequest(f"devices: each device id once ({', '.join(repeated)} repeated)")
    if PRIMARY_DEVICE_ID not in ids:
        raise BadRequest(f"devices: device {PRIMARY_DEVICE_ID} must be listed")
    if version == 0 and len(ids) != 1:
        raise BadRequest(f"devices: version 0 lists device {PRIMARY_DEVICE_ID} alone")


# The fields of a device list, shared with the setDevices frame that sends one.
DEVICES_SPEC = Records(
    "devices",
    Device,
    min_items=1,
    max_items=MAX_DEVICES,
    description=f"1-{MAX_DEVICES} devices, ids unique, device {PRIMARY_DEVICE_ID} always listed "
    "(with the account keys)",
)
LIST_VERSION_SPEC = Integer(
    "version",
    low=0,
    high=MAX_VERSION,
    description="the device list's version: it grows with every change; 0 is device "
    f"{PRIMARY_DEVICE_ID} alone",
)
# What a schema can say of check_devices: version 0 lists one device.
DEVICES_SCHEMA_RULES: Schema = {
    "if": {"properties": {"version": {"const": 0}}},
    "then": {"properties": {"devices": {"maxItems": 1}}},
}
# Required on the wire; None only on a list not signed yet (`DeviceList.sign` signs it).
LIST_SIG_SPEC = FixedBytes(
    "sig",
    SIGNATURE_BYTES,
    default=None,
    required=True,
    description="Ed25519 by the account key over the device list's signing text (§8)",
)


class DeviceListRules(Record):
    """The limits of §8 on a record with a `version` and its `devices`: a device list, and
    the setDevices frame that sends one."""

    version: int
    devices: list[Device]

    def check(self) -> None:
        check_devices(self.version, self.devices)

    @classmethod
    def schema(cls) -> Schema:
        return {**super().schema(), **DEVICES_SCHEMA_RULES}


@dataclasses.dataclass(frozen=True)
class DeviceList(DeviceListRules):
    """A user's signed device list (§8). Version 0 is device 1 alone, with the account keys
    (`unlinked`); it is never sent, and so the one list that may have no `sig`."""

    user_id: str = wire(One("userId", USER_ID, description="whose devices these are"))
    version: int = wire(LIST_VERSION_SPEC)
    devices: list[Device] = wire(DEVICES_SPEC)
    sig: str | None = wire(LIST_SIG_SPEC)

    @classmethod
    def unlinked(cls, user_id: str, sign_key: str, box_key: str) -> DeviceList:
        """The list of a user who never linked a device: version 0, device 1 alone."""
        return cls(
            user_id=user_id,
            version=0,
            devices=[Device(device_id=PRIMARY_DEVICE_ID, sign_key=sign_key, box_key=box_key)],
        )

    def signing_text(self) -> bytes:
        """The bytes the account key signs: "messenger-devices", the user id and the version,
        then one "deviceId signKey boxKey" line per device, in list order."""
        lines = [DEVICES_SIGNING_PREFIX, self.user_id, str(self.version)]
        lines += [f"{d.device_id} {d.sign_key} {d.box_key}" for d in self.devices]
        return ("\n".join(lines) + "\n").encode()

    def sign(self, account_signing_key: SigningKey) -> DeviceList:
        """The same list, signed by the account key (device 1's signing key)."""
        return dataclasses.replace(self, sig=sign(account_signing_key, self.signing_text()))

    def verifies(self, account_sign_key: str) -> bool:
        """Whether `sig` verifies against the account's signKey (base64url): the one peers
        pinned, or the one the server registered."""
        return self.sig is not None and verifies(account_sign_key, self.signing_text(), self.sig)

    @property
    def primary(self) -> Device:
        """Device 1, whose keys are the account's."""
        device = self.device(PRIMARY_DEVICE_ID)
        if device is None:
            raise ValueError(f"a device list without device {PRIMARY_DEVICE_ID}")
        return device

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.device_id == device_id), None)

    @property
    def device_ids(self) -> list[str]:
        return [device.device_id for device in self.devices]

    @property
    def has_linked_devices(self) -> bool:
        """More than device 1: messages to and from the user are sealed per device (§8)."""
        return len(self.devices) > 1

    def has_account_keys(self, sign_key: str, box_key: str) -> bool:
        """Whether device 1 carries these account keys (as §8 requires)."""
        primary = self.device(PRIMARY_DEVICE_ID)
        return primary is not None and (primary.sign_key, primary.box_key) == (sign_key, box_key)


# --- link codes -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinkCode(Record):
    """What a new device shows so that device 1 adds it (§8): `ml1:` + base64url of the
    UTF-8 JSON {"userId", "deviceId", "signKey", "boxKey"}."""

    user_id: str = wire(One("userId", USER_ID))
    device_id: str = wire(One("deviceId", DEVICE_ID))
    sign_key: str = wire(FixedBytes("signKey", KEY_BYTES))
    box_key: str = wire(FixedBytes("boxKey", KEY_BYTES))

    def check(self) -> None:
        if self.device_id == PRIMARY_DEVICE_ID:
            raise BadRequest(f"deviceId: {PRIMARY_DEVICE_ID} is the account's own device")

    def encode(self) -> str:
        """The code as text (compact JSON, fields in the order above)."""
        return LINK_CODE_PREFIX + b64url_encode(to_json(self.to_wire()).encode())

    @classmethod
    def decode(cls, text: str) -> LinkCode:
        """A code as a person pasted it (surrounding whitespace is dropped);
        InvalidLinkCode says what is wrong."""
        code = text.strip() if isinstance(text, str) else ""
        if not code.startswith(LINK_CODE_PREFIX):
            raise InvalidLinkCode(f"a link code starts with {LINK_CODE_PREFIX}")
        if len(code) > MAX_LINK_CODE_CHARS:
            raise InvalidLinkCode(f"a link code has at most {MAX_LINK_CODE_CHARS} characters")
        try:
            document = json.loads(b64url_decode(code[len(LINK_CODE_PREFIX) :]).decode())
        except (ValueError, RecursionError):
            raise InvalidLinkCode("a link code carries base64url of UTF-8 JSON") from None
        try:
            return cls.read(document)
        except BadRequest as refused:
            raise InvalidLinkCode(refused.message) from None

    def device(self) -> Device:
        """The device to add to the list."""
        return Device(device_id=self.device_id, sign_key=self.sign_key, box_key=self.box_key)


# --- one message for several devices ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyCopy(Record):
    """The message key K, Box-sealed for one device (`copies`, `selfCopies`, §8)."""

    device: str = wire(One("device", DEVICE_ID, description="the device this copy is for"))
    key: str = wire(
        FixedBytes(
            "key",
            WRAPPED_KEY_BYTES,
            description="Box(sender device's box key, this device's boxKey).encrypt(K, "
            "keyNonce).ciphertext",
        )
    )
    key_nonce: str = wire(FixedBytes("keyNonce", BOX_NONCE_BYTES, description="fresh, random"))


@dataclasses.dataclass(frozen=True)
class SealedForDevices:
    """A plaintext sealed once (`body`, `nonce`) and its key sealed for every device: the
    fields of a sendMessage to, or from, a user with linked devices."""

    body: str
    nonce: str
    copies: list[KeyCopy]
    self_copies: list[KeyCopy]


def new_message_key() -> bytes:
    """A fresh random SecretBox key K."""
    return secrets.token_bytes(SECRET_KEY_BYTES)


def seal_body(message_key: bytes, plaintext: bytes, nonce: bytes | None = None) -> tuple[str, str]:
    """(body, nonce) in base64url: `SecretBox(K).encrypt(plaintext, nonce).ciphertext`,
    under a fresh random nonce unless one is given (test vectors)."""
    from nacl.secret import SecretBox

    nonce = nonce if nonce is not None else secrets.token_bytes(BOX_NONCE_BYTES)
    sealed = SecretBox(message_key).encrypt(plaintext, nonce)
    return b64url_encode(sealed.ciphertext), b64url_encode(nonce)


def open_body(message_key: bytes, body: str, nonce: str) -> bytes:
    """The plaintext of a body sealed under K; CannotOpen if it does not open."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        return SecretBox(message_key).decrypt(b64url_decode(body), b64url_decode(nonce))
    except (CryptoError, ValueError, TypeError):
        raise CannotOpen("the body does not open with this message key") from None


def wrap_key(
    message_key: bytes,
    sender_box_key: PrivateKey,
    device: Device,
    key_nonce: bytes | None = None,
) -> KeyCopy:
    """K sealed for `device` by the sending device's private box key, under a fresh random
    nonce unless one is given (test vectors)."""
    from nacl.public import Box, PublicKey

    key_nonce = key_nonce if key_nonce is not None else secrets.token_bytes(BOX_NONCE_BYTES)
    box = Box(sender_box_key, PublicKey(b64url_decode(device.box_key)))
    sealed = box.encrypt(message_key, key_nonce)
    return KeyCopy(
        device=device.device_id,
        key=b64url_encode(sealed.ciphertext),
        key_nonce=b64url_encode(key_nonce),
    )


def unwrap_key(key: str, key_nonce: str, own_box_key: PrivateKey, sender_box_key: str) -> bytes:
    """K from a copy sealed for this device: `key` and `keyNonce` of the message frame, this
    device's private box key, and the sending device's boxKey from the sender's verified
    list. CannotOpen if it does not open."""
    from nacl.exceptions import CryptoError
    from nacl.public import Box, PublicKey

    try:
        box = Box(own_box_key, PublicKey(b64url_decode(sender_box_key)))
        message_key = box.decrypt(b64url_decode(key), b64url_decode(key_nonce))
    except (CryptoError, ValueError, TypeError):
        raise CannotOpen("the message key was not sealed for this device") from None
    if len(message_key) != SECRET_KEY_BYTES:
        raise CannotOpen(f"a message key is {SECRET_KEY_BYTES} bytes")
    return message_key


def seal_for_devices(
    plaintext: bytes,
    sender_box_key: PrivateKey,
    recipient_devices: Sequence[Device],
    own_other_devices: Sequence[Device] = (),
) -> SealedForDevices:
    """The plaintext sealed once under a fresh K, and K sealed for each of the recipient's
    devices (`copies`) and each of the sender's other devices (`selfCopies`)."""
    message_key = new_message_key()
    body, nonce = seal_body(message_key, plaintext)
    return SealedForDevices(
        body=body,
        nonce=nonce,
        copies=[wrap_key(message_key, sender_box_key, d) for d in recipient_devices],
        self_copies=[wrap_key(message_key, sender_box_key, d) for d in own_other_devices],
    )
