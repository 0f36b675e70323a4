"""Who is online: answers to getPresence, the last known state of each user, subscriptions;
and who may see us (setPresenceVisibility).

Every `presence` frame (an answer, or a change we subscribed to) updates what we know
and becomes a `PresenceChanged` event. Subscriptions end with the connection on the
server, so they are renewed on every new connection.

Who may see us is the user's setting, shared by all their devices (docs/protocol.md §2,
§8): a device adds the people it writes to (`add`, never replacing the list, so that no
device drops a contact another just added), on a new connection before anything else goes
out and when we write to someone new, before that message (so that they may see us by the
time it reaches them); a choice (everyone, contacts, nobody) made on one device holds for
all of them.

A peer we subscribed to may not let us see them (we are not their contact yet): they
look unknown, and the server records no subscription. When a message from them comes,
they may just have made us a contact, so we ask again (once per peer per connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from messenger_client.connection import Connection
from messenger_client.events import Event, Presence, PresenceChanged
from messenger_client.keystore import check_user_id
from messenger_client.replies import Replies
from messenger_client.server_settings import get_settings
from messenger_protocol.frames import (
    GetPresence,
    PresenceEntry,
    PresenceFrame,
    PresenceVisibilityFrame,
    SetPresenceVisibility,
)
from messenger_protocol.limits import MAX_IDS_PER_FRAME
from messenger_protocol.names import PresenceVisibility


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
        # Who the server's contact list holds, as far as we know (None: not read yet from
        # this home). The list is the user's, kept on their profile whatever connection
        # comes next, so a reconnect sends nothing; a new home cell is asked again.
        self._listed: set[str] | None = None
        # One setting at a time: a choice never lands between another call's read and write.
        self._setting = asyncio.Lock()
        self.last_answer: PresenceVisibilityFrame | None = None  # the server's latest word
        self._asked_again: set[str] = set()  # hidden peers asked again on this connection

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

    async def choose(
        self,
        visibility: PresenceVisibility,
        contacts: Sequence[str],
        *,
        unless: Callable[[], bool] | None = None,
    ) -> PresenceVisibilityFrame | None:
        """Set who may see the user, for every device of theirs (docs/protocol.md §2, §8):
        `visibility` is the user's, and our contacts are added to the list the server
        keeps, never replacing the people the user's other devices added."""
        async with self._setting:
            if unless is not None and unless():
                return None  # (`unless`, asked once it is this call's turn: nothing to do)
            return await self._set(visibility, contacts)

    async def add_contacts(self, contacts: Sequence[str]) -> PresenceVisibilityFrame | None:
        """Make sure the server's contact list holds `contacts`, under the setting in effect
        (which another device of the user may have chosen): the list is read back
        (`getSettings`) once per home, and only the missing are added. Its answer, or None
        when nothing had to be sent."""
        wanted = set(contacts)
        if not wanted:
            return None
        async with self._setting:
            if self._listed is None or not wanted <= self._listed:
                settings = await get_settings(self._replies)
                self._listed = set(settings.contacts)
                missing = wanted - self._listed
                if missing:
                    return await self._set(settings.visibility, sorted(missing))
        return None

    async def _set(
        self, visibility: PresenceVisibility, add: Sequence[str]
    ) -> PresenceVisibilityFrame:
        # Always an edit (`add`, even empty): a `contacts` list would replace the user's.
        frame = SetPresenceVisibility(visibility=visibility, add=sorted(add))
        answer = await self._replies.request(
            frame, PresenceVisibilityFrame, lambda answer: answer.visibility == visibility
        )
        self._listed = (self._listed or set()) | set(add)
        self.last_answer = answer
        return answer

    def new_connection(self) -> None:
        """A new connection: its subscriptions are still to be made (the setting is the
        profile's, and stays)."""
        self._asked_again.clear()

    def home_moved(self) -> None:
        """Our home cell changed (§7): it may not have what the old one took; ask again."""
        self._listed = None

    async def renew_subscriptions(self) -> None:
        """On a new connection: subscribe again (the answers refresh what we know)."""
        for chunk in _per_frame(list(self._subscriptions)):
            await self._connection.send(GetPresence(user_ids=chunk, subscribe=True))

    async def message_from(self, user_id: str) -> None:
        """A message from `user_id` arrived: if we subscribed to them but they look
        unknown, ask again (subscribing): they may have made us a contact by writing."""
        known = self._known.get(user_id)
        hidden = known is not None and not known.online and known.last_seen is None
        if user_id not in self._subscriptions or not hidden or user_id in self._asked_again:
            return
        self._asked_again.add(user_id)
        # The answer updates what we know like any presence frame (`update`).
        await self._connection.send(GetPresence(user_ids=[user_id], subscribe=True))


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
