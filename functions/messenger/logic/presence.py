"""getPresence: who is online, and subscriptions to changes."""

from __future__ import annotations

from messenger.dal.users import Users
from messenger.logic.clock import Clock
from messenger.logic.live import Live, presence_entry
from messenger_protocol.frames import PresenceFrame


class Presence:
    def __init__(self, users: Users, live: Live, clock: Clock) -> None:
        self._users = users
        self._live = live
        self._clock = clock

    def look_up(
        self, watcher: str, connection_id: str, user_ids: list[str], subscribe: bool
    ) -> PresenceFrame:
        asked = list(dict.fromkeys(user_ids))
        # Subscribe first, so a change that lands while we read is not missed.
        if subscribe:
            self._live.subscribe(watcher, connection_id, asked)
        profiles = self._users.get_profiles(asked)
        now = self._clock.now_ms()
        return PresenceFrame(users=[presence_entry(uid, profiles.get(uid), now) for uid in asked])
