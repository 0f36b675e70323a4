"""Whose keys we encrypt to and accept messages from: pinned on first use, then held to.

A peer's keys come from the server (`getKeys`) and are pinned the first time we see
them (trust on first use, in the profile's `peers.json`). If the server later gives
other keys for that user id, nothing is sent to them (`KeyChanged`) and nothing from
them is accepted, until the user has compared the new safety number with the peer by
another channel and called `trust`.

Before sending, a peer's keys are checked with the server once per connection, so a
change is noticed soon; offline, the pinned keys are used as they are: only their
holder can read what we encrypt to them.
"""

from __future__ import annotations

from messenger_client.connection import Connection
from messenger_client.errors import FingerprintMismatch, NotConnected, RequestFailed, UnknownUser
from messenger_client.keystore import PeerKeys, Profile, check_user_id, normalize_fingerprint
from messenger_client.replies import Replies
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

    def new_connection(self) -> None:
        """A new connection: check every peer's keys again before sending to them."""
        self._checked.clear()

    async def check(self, peer: str) -> PeerKeys:
        """The peer's keys from the server, pinned on first use; KeyChanged if they differ."""
        check_user_id(peer)
        pinned = self._profile.pins.check_or_pin(await self._server_keys(peer))
        self._checked.add(peer)
        return pinned

    async def for_sending(self, peer: str) -> PeerKeys:
        """The keys to encrypt to: checked with the server once per connection.

        Offline, pinned keys are used without a check; keys never seen need a
        connection (NotConnected if none opens in time).
        """
        pinned = self._profile.pins.get(peer)
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
        offered = await self._server_keys(peer)
        if normalize_fingerprint(fingerprint) != offered.fingerprint():
            raise FingerprintMismatch(peer, offered.fingerprint())
        self._profile.pins.trust(offered)
        self._checked.add(peer)
        return offered

    def pinned(self, peer: str) -> PeerKeys | None:
        """The peer's pinned keys, as they are (no server asked)."""
        return self._profile.pins.get(peer)

    def fingerprint(self, peer: str) -> str | None:
        """The safety number of the peer's pinned keys (None: not pinned)."""
        pinned = self.pinned(peer)
        return pinned.fingerprint() if pinned else None

    async def _server_keys(self, peer: str) -> PeerKeys:
        """What the server holds for `peer` now: not yet compared with the pin."""
        try:
            keys = await self._replies.request(
                GetKeys(user_id=peer), KeysFrame, lambda answer: answer.user_id == peer
            )
        except RequestFailed as failed:
            if failed.code == ErrorCode.UNKNOWN_USER:
                raise UnknownUser(peer) from None
            raise
        return PeerKeys(keys.user_id, keys.sign_key, keys.box_key)
