"""What the server holds for a user, read back and edited: setBlocked and getSettings
(docs/protocol.md §2).

What a block does to the frames of the blocked (accepted, and then nothing) is applied
where those frames are: logic/messaging.py, logic/receipts.py, logic/visibility.py.
"""

from __future__ import annotations

from messenger.dal.blocks import Blocks
from messenger.dal.contacts import Contacts
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.subscriptions import Subscriptions
from messenger.logic.clock import Clock
from messenger_protocol.frames import BlockedFrame, SetBlocked, SettingsFrame
from messenger_protocol.names import PresenceVisibility


class UserSettings:
    """A user's own settings: presence visibility and contacts, and whom they block."""

    def __init__(
        self,
        profiles: Profiles,
        contacts: Contacts,
        blocks: Blocks,
        subscriptions: Subscriptions,
        clock: Clock,
    ) -> None:
        self._profiles = profiles
        self._contacts = contacts
        self._blocks = blocks
        self._subscriptions = subscriptions
        self._clock = clock

    def set_blocked(self, user_id: str, frame: SetBlocked) -> BlockedFrame:
        """Replace or edit the user's block list (the protocol's one rule for lists,
        BadRequest past MAX_BLOCKED before anything is written); the newly blocked stop
        watching the user, silently."""
        before = self._blocks.blocked_by(user_id)
        after = frame.blocked_after(before)
        self._blocks.set_blocked(user_id, before, after)
        newly = set(after) - set(before)
        if newly:
            self._end_watching(user_id, newly)
        return BlockedFrame(count=len(after))

    def _end_watching(self, user_id: str, watchers: set[str]) -> None:
        """End the subscriptions (here) and interests (of other cells) of `watchers` in
        the user's presence, telling no one."""
        now_s = self._clock.now_s()
        for page in self._subscriptions.watchers_of(user_id, now_s):
            for subscription in page:
                if subscription.watcher in watchers:
                    self._subscriptions.drop_subscription(subscription)
        for interests in self._subscriptions.interests_in(user_id, now_s):
            self._subscriptions.drop_interests(i for i in interests if i.watcher in watchers)

    def settings_of(self, user_id: str) -> SettingsFrame:
        """What the server holds for the user, for every device to show and edit."""
        profile = self._own_profile(user_id)
        contacts = (
            self._contacts.contacts_of(profile)
            if profile.visibility is PresenceVisibility.CONTACTS
            else []
        )
        return SettingsFrame(
            visibility=profile.visibility,
            contacts=contacts,
            blocked=self._blocks.blocked_by(user_id),
        )

    def _own_profile(self, user_id: str) -> Profile:
        profile = self._profiles.get_profile(user_id, consistent=True)
        if profile is None:
            raise RuntimeError("an authorized caller has no profile")
        return profile
