"""Whose keys we encrypt to and accept messages from: pinned on first use, then held to.

A peer's keys come from the server (`getKeys`) and are pinned the first time we see
them (trust on first use, in the profile's `peers.json`). If the server later gives
other keys for that user id, nothing is sent to them (`KeyChanged`) and nothing from
them is accepted, until the user has compared the new safety number with the peer by
another channel and called `trust`.

Before sending, a peer's keys are checked with the server once per connection, so a
change is noticed soon; offline, the pinned keys are used as they are: only their
holder can read what we encrypt to them.

A user's device list (docs/protocol.md §8) comes with their keys and is held only once
it verifies under the pinned account key; one that does not is a key change
(`DeviceListRefused`). Our own list is verified the same way (device 1: with our own key).
"""

from __future__ import annotations

from messenger_client.connection import Connection
from messenger_client.errors import (
    DeviceListRefused,
    FingerprintMismatch,
    KeyChanged,
    NotConnected,
    RequestFailed,
    UnknownUser,
)
from messenger_client.keystore import PeerKeys, Profile, check_user_id, normalize_fingerprint
from messenger_client.replies import Replies
from messenger_protocol.devices import DeviceList
from messenger_protocol.frames import GetKeys, KeysFrame
from messenger_protocol.names import ErrorCode


class KeyPinning:
    """The pinning policy for one profile's peers, on one connection."""

    def __init__(
        self, profile: Profile, connection: Connection, replies: Replies, timeout: float
    ) -> None:
        self._profile = profile
        self._connection = connection
        self._replies = replies
        self._timeout = timeout
        self._checked: set[str] = set()  # peers whose keys we checked on this connection
        # Users' device lists as last fetched, verified under their pinned account keys.
        self._lists: dict[str, DeviceList] = {}

    def new_connection(self) -> None:
        """A new connection: check every peer's keys again before sending to them."""
        self._checked.clear()

    async def check(self, peer: str) -> PeerKeys:
        """The peer's keys from the server, pinned on first use, and their device list,
        verified under the pinned account key; KeyChanged if either does not hold."""
        check_user_id(peer)
        answer = await self._server_keys(peer)
        offered = PeerKeys(answer.user_id, answer.sign_key, answer.box_key)
        pinned = self._account_keys(peer) or self._profile.pins.check_or_pin(offered)
        if pinned != offered:
            raise KeyChanged(peer, pinned, offered)
        try:
            self._lists[peer] = verified_list(pinned, answer.devices)
        except DeviceListRefused:
            # Nothing goes to them, nor opens from them, until the user trusts again.
            self._lists.pop(peer, None)
            self._checked.discard(peer)
            raise
        self._checked.add(peer)
        return pinned

    def devices_of(self, user_id: str) -> DeviceList | None:
        """The user's verified device list as last fetched (None: not fetched yet)."""
        return self._lists.get(user_id)

    def learn_own_list(self, listing: DeviceList) -> None:
        """Our own list, as the server stored it (a `devices` answer), once it verifies."""
        own = self._account_keys(self._profile.user_id)
        if own is not None:
            self._lists[own.user_id] = verified_list(own, listing)

    async def sender_devices(self, sender: str, device_id: str) -> DeviceList:
        """The sender's verified list naming `device_id`: fetched again when the one held
        does not name it (a device linked since). KeyChanged, UnknownUser as `check`."""
        listing = self._lists.get(sender)
        if listing is None or listing.device(device_id) is None:
            await self.check(sender)
            listing = self._lists[sender]
        return listing

    def _account_keys(self, user_id: str) -> PeerKeys | None:
        """Our own account keys when we are device 1 (never pinned from the server), else
        None: the pinned ones decide."""
        identity = self._profile.identity
        if user_id == identity.user_id and identity.is_primary:
            return identity.public_keys
        return None

    async def for_sending(self, peer: str) -> PeerKeys:
        """The keys to encrypt to: checked with the server once per connection.

        Offline, pinned keys are used without a check; keys never seen need a
        connection (NotConnected if none opens in time).
        """
        pinned = self._account_keys(peer) or self._profile.pins.get(peer)
        if pinned is not None and (peer in self._checked or self._connection.session is None):
            return pinned
        if pinned is None:
            await self._connection.wait_open(self._timeout)
        try:
            return await self.check(peer)
        except NotConnected:
            if pinned is None:
                raise
            return pinned

    async def for_reading(self, sender: str) -> PeerKeys:
        """The keys a message from `sender` must open with: the pinned ones, or pinned now."""
        return self._profile.pins.get(sender) or await self.check(sender)

    async def trust(self, peer: str, fingerprint: str) -> PeerKeys:
        """Pin the peer's current keys after the user compared their safety number.

        `fingerprint` is the number the peer read out; it must match the keys the
        server gives now (FingerprintMismatch otherwise, and nothing changes).
        """
        check_user_id(peer)
        answer = await self._server_keys(peer)
        offered = PeerKeys(answer.user_id, answer.sign_key, answer.box_key)
        if normalize_fingerprint(fingerprint) != offered.fingerprint():
            raise FingerprintMismatch(peer, offered.fingerprint())
        self._profile.pins.trust(offered)
        self._lists[peer] = verified_list(offered, answer.devices)
        self._checked.add(peer)
        return offered

    def pinned(self, peer: str) -> PeerKeys | None:
        """The peer's pinned keys, as they are (no server asked)."""
        return self._profile.pins.get(peer)

    def fingerprint(self, peer: str) -> str | None:
        """The safety number of the peer's pinned keys (None: not pinned): the account
        key's, whichever devices they linked."""
        pinned = self._account_keys(peer) or self.pinned(peer)
        return pinned.fingerprint() if pinned else None

    async def _server_keys(self, peer: str) -> KeysFrame:
        """What the server holds for `peer` now: not yet compared with the pin."""
        try:
            keys = await self._replies.request(
                GetKeys(user_id=peer), KeysFrame, lambda answer: answer.user_id == peer
            )
        except RequestFailed as failed:
            if failed.code == ErrorCode.UNKNOWN_USER:
                raise UnknownUser(peer) from None
            raise
        return keys


def verified_list(account: PeerKeys, listing: DeviceList | None) -> DeviceList:
    """The user's device list once it verifies under their account keys (None: version 0,
    device 1 alone); DeviceListRefused when it does not (§8: a key change)."""
    if listing is None:
        return DeviceList.unlinked(account.user_id, account.sign_key, account.box_key)
    if listing.user_id != account.user_id:
        raise DeviceListRefused(account.user_id, account, "it names another user")
    if not listing.verifies(account.sign_key):
        raise DeviceListRefused(account.user_id, account, "its signature does not verify")
    if not listing.has_account_keys(account.sign_key, account.box_key):
        raise DeviceListRefused(account.user_id, account, "device 1 is not the account")
    return listing
