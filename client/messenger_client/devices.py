"""Our own linked devices (docs/protocol.md §8): link codes, and the signed device list.

    code = link_code(profile.identity)        # on the new device: show it (text and QR)
    await devices.link(code)                  # on device 1: add it, sign, setDevices
    await devices.remove("laptop")            # on device 1: sign a list without it

Device 1 holds the account key, the only one that signs the list; it keeps the list it
last published (in the history's meta) and sends it again after its home cell's epoch
changed (§7: the cell may have lost it). Every device reads the list the server holds
with `getKeys` for itself, verified like a peer's (`messenger_client.pinning`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging

from messenger_client.errors import NotConnected, NotDeviceOne, RequestFailed
from messenger_client.keystore import Identity, Profile
from messenger_client.pinning import KeyPinning
from messenger_client.replies import Replies
from messenger_client.store import HistoryStore
from messenger_protocol.devices import Device, DeviceList, LinkCode, check_devices
from messenger_protocol.errors import BadRequest, InvalidLinkCode
from messenger_protocol.frames import DevicesFrame, SetDevices
from messenger_protocol.limits import MAX_DEVICES
from messenger_protocol.records import to_json

log = logging.getLogger(__name__)

# The history's meta key for the device list device 1 last published (its wire JSON).
OWN_LIST_KEY = "device_list"


def link_code(identity: Identity) -> str:
    """The `ml1:` code a new device shows, for device 1 to add it (§8)."""
    keys = identity.public_keys
    return LinkCode(
        user_id=identity.user_id,
        device_id=identity.device_id,
        sign_key=keys.sign_key,
        box_key=keys.box_key,
    ).encode()


def qr_text(code: str) -> str:
    """The code as a QR code a phone camera reads off a terminal (half-block characters,
    dark on light, with its quiet zone)."""
    import qrcode

    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    qr.add_data(code)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def with_device(listing: DeviceList, code: LinkCode) -> DeviceList:
    """The next version of `listing` with the device a link code names (unsigned).
    InvalidLinkCode when the code is for another user, names a device already listed with
    other keys, or the list is full."""
    if code.user_id != listing.user_id:
        raise InvalidLinkCode(f"the code is for user {code.user_id!r}, not {listing.user_id!r}")
    existing = listing.device(code.device_id)
    if existing is not None:
        if existing == code.device():
            return listing  # linked already: the same list again
        raise InvalidLinkCode(f"device {code.device_id!r} is listed already, with other keys")
    if len(listing.devices) >= MAX_DEVICES:
        raise InvalidLinkCode(f"at most {MAX_DEVICES} devices: remove one first")
    return _next(listing, [*listing.devices, code.device()])


def without_device(listing: DeviceList, device_id: str) -> DeviceList:
    """The next version of `listing` without `device_id` (unsigned); ValueError for
    device 1 or a device not listed."""
    if listing.device(device_id) is None:
        raise ValueError(f"no device {device_id!r} in the list")
    remaining = [device for device in listing.devices if device.device_id != device_id]
    try:
        check_devices(listing.version + 1, remaining)
    except BadRequest as refused:
        raise ValueError(refused.message) from None
    return _next(listing, remaining)


def _next(listing: DeviceList, devices: list[Device]) -> DeviceList:
    return dataclasses.replace(listing, version=listing.version + 1, devices=devices, sig=None)


class LinkedDevices:
    """One profile's device list: read by every device, changed by device 1 only."""

    def __init__(
        self, profile: Profile, store: HistoryStore, keys: KeyPinning, replies: Replies
    ) -> None:
        self._identity = profile.identity
        self._store = store
        self._keys = keys
        self._replies = replies

    async def current(self) -> DeviceList:
        """Our list as the server holds it, verified (checked once per connection; offline,
        the one held, else device 1's last published, else device 1 alone)."""
        me = self._identity.user_id
        await self._keys.for_sending(me)
        return self._keys.devices_of(me) or self._published() or self._unlinked()

    async def link(self, code: str) -> DeviceList:
        """Device 1 adds the device a link code names and publishes the list; the list as
        the server stored it. InvalidLinkCode, NotDeviceOne, RequestFailed."""
        self._require_device_one()
        parsed = LinkCode.decode(code)
        listing = await self.current()
        changed = with_device(listing, parsed)
        return listing if changed is listing else await self._publish(changed)

    async def remove(self, device_id: str) -> DeviceList:
        """Device 1 removes a device (the server closes its connections and deletes its
        queue); the list as stored. ValueError, NotDeviceOne, RequestFailed."""
        self._require_device_one()
        return await self._publish(without_device(await self.current(), device_id))

    async def republish(self) -> None:
        """Device 1, after its home's epoch changed: the list it published, again (the
        same version and signature: accepted as the same list, or restored)."""
        published = self._published()
        if not self._identity.is_primary or published is None:
            return
        try:
            await self._send(published)
        except (NotConnected, RequestFailed) as problem:
            log.info("device list not sent again yet: %s", problem)

    async def _publish(self, listing: DeviceList) -> DeviceList:
        signed = listing.sign(self._identity.signing_key)
        return await self._send(signed)

    async def _send(self, signed: DeviceList) -> DeviceList:
        answer = await self._replies.request(SetDevices.of(signed), DevicesFrame, lambda _: True)
        stored = DeviceList(
            user_id=answer.user_id, version=answer.version, devices=answer.devices, sig=answer.sig
        )
        self._keys.learn_own_list(stored)
        self._store.set_meta(OWN_LIST_KEY, to_json(stored.to_wire()))
        return stored

    def _published(self) -> DeviceList | None:
        document = self._store.get_meta(OWN_LIST_KEY)
        if document is None:
            return None
        try:
            return DeviceList.read(json.loads(document))
        except (BadRequest, ValueError):
            log.warning("the device list kept in the history is malformed: ignored")
            return None

    def _unlinked(self) -> DeviceList:
        keys = self._identity.public_keys
        return DeviceList.unlinked(keys.user_id, keys.sign_key, keys.box_key)

    def _require_device_one(self) -> None:
        if not self._identity.is_primary:
            raise NotDeviceOne(
                f"only device 1 of {self._identity.user_id} (the account key) changes the "
                f"device list; this is device {self._identity.device_id!r}"
            )
