"""Who may see whose presence, and what they see (docs/protocol.md §2).

To anyone its owner does not allow, a user looks exactly like an unknown one: offline,
lastSeen null. A user always sees their own presence. A user blocked by another sees them
as unknown whatever the setting, and is never told a change (their subscription ends
silently, docs/protocol.md §2 setBlocked). The rule is written once here and asked both
ways: by a watcher about many users (getPresence) and about one user by many watchers
(telling them of a change).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from messenger.dal.blocks import Blocks
from messenger.dal.contacts import Contacts
from messenger.dal.profiles import Profile
from messenger_protocol.frames import PresenceEntry
from messenger_protocol.names import PresenceVisibility


def presence_entry(user_id: str, profile: Profile | None, now_ms: int) -> PresenceEntry:
    """What anyone allowed to see the user's presence sees; None: an unknown user."""
    if profile is None:
        return unknown_entry(user_id)
    online = profile.is_online(now_ms)
    return PresenceEntry(
        user_id=user_id, online=online, last_seen=None if online else profile.last_seen
    )


def unknown_entry(user_id: str) -> PresenceEntry:
    """An unknown user, and every user to those who may not see their presence."""
    return PresenceEntry(user_id=user_id, online=False, last_seen=None)


def visibility_digest(visibility: PresenceVisibility, contacts: Iterable[str]) -> str:
    """Names a setting: the same setting sent again (every reconnect) writes nothing."""
    text = "\n".join([visibility.value, *sorted(contacts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Audience:
    """What a user's watchers may hear of a change: `allowed` are told it, `blocked` are
    told nothing (their subscriptions end silently), the others see an unknown user."""

    allowed: set[str]
    blocked: set[str]


class Visibility:
    """Applies each user's presence visibility and blocks, reading contact lists and block
    items as needed."""

    def __init__(self, contacts: Contacts, blocks: Blocks) -> None:
        self._contacts = contacts
        self._blocks = blocks

    def visible_to(self, watcher: str, profiles: Iterable[Profile]) -> set[str]:
        """The users among `profiles` whose presence `watcher` may see."""
        visible: set[str] = set()
        listing: list[Profile] = []
        for profile in profiles:
            if profile.user_id == watcher or profile.visibility is PresenceVisibility.EVERYONE:
                visible.add(profile.user_id)
            elif profile.visibility is PresenceVisibility.CONTACTS:
                listing.append(profile)
        if listing:
            visible |= self._contacts.contacts_among(listing, watcher)
        blocking = [p for p in profiles if p.user_id in visible and p.user_id != watcher]
        return visible - self._blocks.blockers_among(blocking, watcher)

    def audience(self, profile: Profile, watchers: set[str]) -> Audience:
        """Which of `watchers` may see the presence of `profile`'s user, and which it
        blocks."""
        blocked = self._blocks.blocked_among(profile, watchers - {profile.user_id})
        watchers = watchers - blocked
        if profile.visibility is PresenceVisibility.EVERYONE:
            return Audience(allowed=watchers, blocked=blocked)
        allowed = {profile.user_id} & watchers
        if profile.visibility is PresenceVisibility.CONTACTS:
            allowed |= self._contacts.contacts_of_among(profile, watchers)
        return Audience(allowed=allowed, blocked=blocked)
