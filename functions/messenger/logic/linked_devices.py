"""setDevices (docs/protocol.md §8): the user's signed device list, sent by device 1.

The list is accepted only from a connection of device 1, signed by the account key (the
user's registered signKey), naming device 1 with the account keys, and with a version
above the stored one; the same list again is answered as accepted and changes nothing.
Anything else is BAD_REQUEST and writes nothing. A device the new list no longer names
has its connections closed (DEVICE_REMOVED), its queue deleted and its push tokens
forgotten (record and SNS endpoint); its handshakes are
refused from then on (logic/identity.py reads the same list).
"""

from __future__ import annotations

from collections.abc import Callable

from messenger.contract import Metric
from messenger.dal.device_lists import DeviceListOutdated, DeviceLists
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.queue import Queue, queue_owner
from messenger.errors import BadRequest
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.push import PushNotifier
from messenger.logic.queue_caps import QueueCaps
from messenger.observability import count, logger
from messenger_protocol.devices import DeviceList
from messenger_protocol.frames import DevicesFrame, SetDevices
from messenger_protocol.limits import PRIMARY_DEVICE_ID


class LinkedDevices:
    """Stores device lists, and takes removed devices off the server."""

    def __init__(
        self,
        profiles: Profiles,
        device_lists: DeviceLists,
        queue: Queue,
        live: Callable[[], LiveDelivery],
        push: PushNotifier,
        caps: QueueCaps,
    ) -> None:
        self._profiles = profiles
        self._caps = caps
        self._push = push
        self._device_lists = device_lists
        self._queue = queue
        self._live = live

    def set_devices(self, user_id: str, device_id: str, frame: SetDevices) -> DevicesFrame:
        """Store the list device 1 sent, then remove the devices it no longer names."""
        if device_id != PRIMARY_DEVICE_ID:
            raise BadRequest(f"setDevices: only device {PRIMARY_DEVICE_ID} sets the devices")
        profile = self._profiles.get_profile(user_id, consistent=True)
        if profile is None:
            raise RuntimeError("an authorized caller has no profile")
        listing = frame.device_list(user_id)
        if not listing.verifies(profile.sign_key):
            raise BadRequest("sig: does not verify under the account key")
        if not listing.has_account_keys(profile.sign_key, profile.box_key):
            raise BadRequest(f"devices: device {PRIMARY_DEVICE_ID} carries the account keys")
        stored = profile.devices
        if listing.version == stored.version and _same_devices(listing, stored):
            # Sent again (after an epoch change, say): nothing changes.
            return _answer(stored if stored.sig is not None else listing)
        if listing.version <= stored.version:
            raise BadRequest(f"version: must be above {stored.version}, the stored one")
        try:
            self._device_lists.store(listing)
        except DeviceListOutdated:
            raise BadRequest("version: another list was stored meanwhile") from None
        count(Metric.DEVICE_LISTS_STORED)
        removed = [d for d in stored.device_ids if listing.device(d) is None]
        for removed_device in removed:
            self._remove(profile, removed_device)
        return _answer(listing)

    def _remove(self, profile: Profile, device_id: str) -> None:
        """A device no longer listed: its connections closed, its push tokens forgotten, its
        queue deleted. Never
        fails the answer: the list is stored, so its handshakes are refused already, and
        what is left of its queue is never read again and expires with its TTL."""
        count(Metric.DEVICES_REMOVED)
        try:
            self._live().close_removed_device(profile, device_id)
        except Exception:
            logger.warning("could not close a removed device's connections", exc_info=True)
        # Forgotten one by one, each logged if it fails: a token left would still be pushed.
        self._push.forget_device(profile, device_id)
        queue = queue_owner(profile.user_id, device_id)
        try:
            deleted = self._queue.delete_queue(queue)
        except Exception:
            logger.warning("could not delete a removed device's queue", exc_info=True)
            return
        count(Metric.REMOVED_DEVICE_ITEMS_DELETED, deleted)
        # Its caps' counts go with it: the device, listed again, starts with room.
        self._caps.forget_queue(queue)


def _same_devices(a: DeviceList, b: DeviceList) -> bool:
    return a.version == b.version and list(a.devices) == list(b.devices)


def _answer(listing: DeviceList) -> DevicesFrame:
    return DevicesFrame(
        user_id=listing.user_id,
        version=listing.version,
        devices=list(listing.devices),
        sig=listing.sig,
    )
