"""Live connections: who is online, delivering frames to them, and presence changes.

A user is online while at least one connection is open; the first connection opening
and the last one closing are the only presence changes watchers hear about.
"""

from __future__ import annotations

from messenger.contract import STALE_CONNECTION_SECONDS, Metric
from messenger.dal.users import Profile, Users
from messenger.errors import ConnectionGone
from messenger.logic.clock import Clock
from messenger.observability import count
from messenger.transport.connections import Connections
from messenger_protocol.frames import PresenceEntry, PresenceFrame, ServerFrame


def presence_entry(user_id: str, profile: Profile | None, now_ms: int) -> PresenceEntry:
    if profile is None:
        return PresenceEntry(user_id=user_id, online=False, last_seen=None)
    online = profile.is_online(now_ms)
    return PresenceEntry(
        user_id=user_id, online=online, last_seen=None if online else profile.last_seen
    )


class Live:
    def __init__(self, users: Users, connections: Connections, clock: Clock) -> None:
        self._users = users
        self._connections = connections
        self._clock = clock

    def deliver(self, profile: Profile, frame: ServerFrame, *, skip: str | None = None) -> int:
        """Post a frame to every live connection of a user; returns how many took it.

        A connection that answers Gone is closed on our side too.
        """
        delivered = 0
        for connection_id in profile.live_connections(self._clock.now_ms()):
            if connection_id == skip:
                continue
            if self.post(profile.user_id, connection_id, frame):
                delivered += 1
        return delivered

    def post(self, user_id: str, connection_id: str, frame: ServerFrame) -> bool:
        """Post to one connection of a user; False (and the connection closed) if gone."""
        try:
            self._connections.post(connection_id, frame)
        except ConnectionGone:
            count(Metric.STALE_CONNECTIONS_REMOVED)
            self.connection_closed(user_id, connection_id)
            return False
        return True

    def connection_opened(self, user_id: str, connection_id: str, connected_at: int) -> None:
        profile = self._users.add_connection(user_id, connection_id, connected_at)
        count(Metric.CONNECTIONS_OPENED)
        now = self._clock.now_ms()
        stale = profile.stale_connections(now)
        if stale:
            self._users.prune_connections(user_id, stale)
        if profile.live_connections(now) == [connection_id]:
            self._notify_watchers(user_id, presence_entry(user_id, profile, now))

    def connection_closed(self, user_id: str, connection_id: str) -> None:
        """Forget a connection ($disconnect, or Gone on a post). Idempotent."""
        now = self._clock.now_ms()
        profile = self._users.remove_connection(user_id, connection_id, now)
        self._users.drop_subscriptions_of(connection_id)
        if profile is None:
            return  # someone else closed it already
        count(Metric.CONNECTIONS_CLOSED)
        if not profile.is_online(now):
            self._notify_watchers(user_id, presence_entry(user_id, profile, now))

    def _notify_watchers(self, user_id: str, entry: PresenceEntry) -> None:
        frame = PresenceFrame(users=[entry])
        for subscription in self._users.watchers_of(user_id, self._clock.now_s()):
            if not self.post(subscription.watcher, subscription.connection_id, frame):
                self._users.drop_subscription(subscription)

    def subscribe(self, watcher: str, connection_id: str, watched: list[str]) -> None:
        # A subscription ends with its connection; the TTL only sweeps up after a lost
        # $disconnect.
        expires_at = self._clock.now_s() + STALE_CONNECTION_SECONDS
        self._users.add_subscriptions(watcher, connection_id, watched, expires_at)
