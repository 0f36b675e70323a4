"""Linked devices in tests (docs/protocol.md §8): a user's other device with its own keys,
its signed device list, and messages sealed once for several devices."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nacl.public import Box, PrivateKey
from nacl.signing import SigningKey

from messenger_local.harness import API
from messenger_protocol.connect import canonical_endpoint, signed_connect_query
from messenger_protocol.devices import (
    Device,
    DeviceList,
    open_body,
    seal_for_devices,
    unwrap_key,
)
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.frames import SendMessage, SetDevices
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from tests.support.identities import TestUser

# The endpoint the test API stage serves (`aud` of a v1.2 connect query, §1).
AUD = canonical_endpoint(f"wss://{API.domain_name}/{API.stage}")


@dataclass
class LinkedDevice:
    """One of a user's linked devices: its own keys, connecting in the v1.2 form."""

    __test__ = False

    user: TestUser
    device_id: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    box_key: PrivateKey = field(default_factory=PrivateKey.generate)
    # The endpoint it connects to (`aud`): the test stage unless told otherwise.
    aud: str = AUD

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def device(self) -> Device:
        return Device(
            device_id=self.device_id,
            sign_key=b64url_encode(bytes(self.signing_key.verify_key)),
            box_key=b64url_encode(bytes(self.box_key.public_key)),
        )

    def encrypt_for(self, peer: LinkedDevice, text: str) -> tuple[str, str]:
        """(body, nonce) of a NaCl Box from this device to another device, base64url."""
        nonce = secrets.token_bytes(24)
        sealed = Box(self.box_key, peer.box_key.public_key).encrypt(text.encode(), nonce)
        return b64url_encode(sealed.ciphertext), b64url_encode(nonce)

    def connect_query(
        self,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        with_keys: bool = False,
        aud: str | None = None,
    ) -> dict[str, str]:
        """A connect query signed by this device's own key, bound to `aud` (the harness's
        endpoint), else to the device's own (the test stage): always the v1.2 form."""
        keys = (self.user.sign_key_b64, self.user.box_key_b64) if with_keys else None
        return signed_connect_query(
            self.signing_key,
            self.user_id,
            now=time.time() if ts is None else ts,
            nonce=nonce,
            keys=keys,
            aud=aud or self.aud,
            device_id=self.device_id,
        )


def primary_device(user: TestUser) -> Device:
    """Device 1: the account keys."""
    return Device(device_id=PRIMARY_DEVICE_ID, sign_key=user.sign_key_b64, box_key=user.box_key_b64)


def device_list(user: TestUser, version: int, *linked: LinkedDevice) -> DeviceList:
    """The user's list at `version`: device 1 and these, signed by the account key."""
    devices = [primary_device(user), *(device.device() for device in linked)]
    return DeviceList(user_id=user.user_id, version=version, devices=devices).sign(user.signing_key)


def set_devices_frame(listing: DeviceList) -> dict[str, Any]:
    return SetDevices.of(listing).to_wire()


def sealed_message(
    sender_box_key: PrivateKey,
    to: DeviceList,
    own: DeviceList,
    sending_device: str,
    text: str,
    message_id: str,
    *,
    sent_at: int = 1,
) -> dict[str, Any]:
    """A sendMessage sealed once, K boxed for each of the recipient's devices and the
    sender's other devices (§8), following these lists."""
    others = [d for d in own.devices if d.device_id != sending_device]
    sealed = seal_for_devices(text.encode(), sender_box_key, list(to.devices), others)
    frame = SendMessage(
        body=sealed.body,
        message_id=message_id,
        to=to.user_id,
        nonce=sealed.nonce,
        sent_at=sent_at,
        devices=to.version,
        copies=sealed.copies,
        self_devices=own.version,
        self_copies=sealed.self_copies,
    )
    return frame.to_wire()


def open_copy(frame: dict[str, Any], own_box_key: PrivateKey, sender: Sequence[Device]) -> str:
    """The plaintext of a `message` frame sealed for devices, opened by one device."""
    by_id = {device.device_id: device for device in sender}
    key = unwrap_key(
        frame["key"], frame["keyNonce"], own_box_key, by_id[frame["fromDevice"]].box_key
    )
    return open_body(key, frame["body"], frame["nonce"]).decode()
