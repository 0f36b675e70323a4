"""Which queue items one sendMessage makes (docs/protocol.md §8): one copy per device of the
recipient, and one per other device of the sender, exactly as the stored device lists say.

A frame whose copies do not follow the lists the server holds is StaleDevices (it carries
both versions), checked before anything is written. A v1.1 frame (no `copies`) reaches the
recipient's device 1 only; a sender with linked devices must send `selfCopies`.
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger.dal.queue import queue_owner
from messenger.errors import StaleDevices
from messenger_protocol.devices import DeviceList, KeyCopy
from messenger_protocol.frames import SendMessage
from messenger_protocol.limits import PRIMARY_DEVICE_ID


@dataclass(frozen=True)
class DeviceCopy:
    """One queue item of a message: for which device, and its copy of the message key."""

    user_id: str
    device_id: str
    key: KeyCopy | None = None  # None: a v1.1 message (a Box for device 1)
    to: str | None = None  # on a copy of one's own message: the peer

    @property
    def owner(self) -> str:
        """The device's queue."""
        return queue_owner(self.user_id, self.device_id)


def check_recipient_copies(frame: SendMessage, recipient: DeviceList, self_version: int) -> None:
    """The recipient's side of the frame follows its stored list; StaleDevices otherwise."""

    def stale(message: str) -> StaleDevices:
        return StaleDevices(message, recipient.version, self_version)

    if frame.copies is None:
        # A v1.1 frame: for device 1, whatever else the recipient has (§8).
        if frame.devices is not None and frame.devices != recipient.version:
            raise stale("devices: not the recipient's list version")
        return
    if frame.devices != recipient.version:
        raise stale("devices: not the recipient's list version")
    if {copy.device for copy in frame.copies} != set(recipient.device_ids):
        raise stale("copies: not exactly the recipient's devices")


def check_self_copies(
    frame: SendMessage, sender: DeviceList, sender_device: str, recipient_version: int
) -> None:
    """The sender's side of the frame follows its own stored list: a copy for each of its
    other devices, none for the one sending; StaleDevices otherwise."""

    def stale(message: str) -> StaleDevices:
        return StaleDevices(message, recipient_version, sender.version)

    others = {d for d in sender.device_ids if d != sender_device}
    if frame.self_devices is not None and frame.self_devices != sender.version:
        raise stale("selfDevices: not your list version")
    given = {copy.device for copy in frame.self_copies or ()}
    if given != others:
        raise stale("selfCopies: not exactly your other devices")


def recipient_copies(frame: SendMessage, recipient: DeviceList) -> list[DeviceCopy]:
    """The recipient's items: one per copy, or device 1's alone for a v1.1 frame."""
    if frame.copies is None:
        return [DeviceCopy(recipient.user_id, PRIMARY_DEVICE_ID)]
    return [DeviceCopy(recipient.user_id, copy.device, copy) for copy in frame.copies]


def self_copies(sender: str, frame: SendMessage) -> list[DeviceCopy]:
    """The sender's other devices' items: its own message, addressed to the peer."""
    return [DeviceCopy(sender, copy.device, copy, to=frame.to) for copy in frame.self_copies or ()]
