"""Who is online: answers to getPresence, the last known state of each user, subscriptions.

Every `presence` frame (an answer, or a change we subscribed to) updates what we know
and becomes a `PresenceChanged` event. Subscriptions end with the connection on the
server, so they are renewed on every new connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from messenger_client.connection import Connection
from messenger_client.events import Event, Presence, PresenceChanged
from messenger_client.keystore import check_user_id
from messenger_client.replies import Replies
from messenger_protocol.frames import GetPresence, PresenceEntry, PresenceFrame
from messenger_protocol.limits import MAX_IDS_PER_FRAME


class PresenceTracker:
    """The presence of the users asked about, kept up to date for those subscribed to."""

    def __init__(
        self, connection: Connection, replies: Replies, publish: Callable[[Event], None]
    ) -> None:
        self._connection = connection
        self._replies = replies
        self._publish = publish
        self._subscriptions: dict[str, None] = {}  # an ordered set
        self._known: dict[str, Presence] = {}

    async def get(self, user_ids: Sequence[str], *, subscribe: bool) -> list[Presence]:
        """The presence of each user now, in the order asked; with `subscribe`, their
        changes follow (as PresenceChanged events) on this and every later connection."""
        wanted = list(dict.fromkeys(user_ids))
        for user_id in wanted:
            check_user_id(user_id)
        if subscribe:
            self._subscriptions.update(dict.fromkeys(wanted))
        found: dict[str, Presence] = {}
        for chunk in _per_frame(wanted):
            answer = await self._replies.request(
                GetPresence(user_ids=chunk, subscribe=subscribe), PresenceFrame, _lists(chunk)
            )
            found.update((entry.user_id, _presence_of(entry)) for entry in answer.users)
        return [found[user_id] for user_id in wanted if user_id in found]

    def last_known(self, user_id: str) -> Presence | None:
        return self._known.get(user_id)

    def update(self, frame: PresenceFrame) -> None:
        """A `presence` frame arrived: remember each user's state and tell the app."""
        for entry in frame.users:
            presence = _presence_of(entry)
            self._known[presence.user_id] = presence
            self._publish(PresenceChanged(presence))

    async def renew_subscriptions(self) -> None:
        """On a new connection: subscribe again (the answers refresh what we know)."""
        for chunk in _per_frame(list(self._subscriptions)):
            await self._connection.send(GetPresence(user_ids=chunk, subscribe=True))


def _presence_of(entry: PresenceEntry) -> Presence:
    return Presence(entry.user_id, entry.online, entry.last_seen)


def _lists(user_ids: Sequence[str]) -> Callable[[PresenceFrame], bool]:
    """Whether a `presence` frame lists exactly these users: the answer to asking about them."""
    asked = set(user_ids)
    return lambda frame: {entry.user_id for entry in frame.users} == asked


def _per_frame(user_ids: list[str]) -> list[list[str]]:
    return [
        user_ids[start : start + MAX_IDS_PER_FRAME]
        for start in range(0, len(user_ids), MAX_IDS_PER_FRAME)
    ]
