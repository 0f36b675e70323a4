"""Live delivery: who is online, and handing frames to their open connections.

A user is online while at least one connection is open; the first connection opening
and the last one closing are the only presence changes. Watchers hear of them from the
presence function (logic/presence_changes.py), which this module only tells that a change
happened: no handshake and no send ever waits on, or fails because of, who watches.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from messenger.contract import PRESENCE_FLAP_WINDOW_MS, PRESENCE_SETTLE_MS, Metric
from messenger.dal.profiles import ClosedConnection, Profile, Profiles
from messenger.dal.subscriptions import Subscriptions
from messenger.errors import AccessDenied, ConnectionGone
from messenger.logic.clock import Clock
from messenger.observability import count, logger
from messenger.transport.connections import Connections
from messenger.transport.presence_events import PresenceAnnouncer, PresenceEvent
from messenger_protocol.frames import ErrorFrame, ServerFrame
from messenger_protocol.limits import MAX_CONNECTIONS_PER_DEVICE, PRIMARY_DEVICE_ID
from messenger_protocol.names import ErrorCode

# Posts in flight at once, for the whole container: a user's connections (at most 4 per
# device, docs/protocol.md §1) are posted to together, and a hot user cannot make one
# invocation open more sockets to API Gateway than this.
POST_WORKERS = 8
_POSTING = ThreadPoolExecutor(max_workers=POST_WORKERS, thread_name_prefix="post")


class LiveDelivery:
    """Posts frames to a user's open connections, and records them opening and closing."""

    def __init__(
        self,
        profiles: Profiles,
        subscriptions: Subscriptions,
        connections: Connections,
        clock: Clock,
        announcer: PresenceAnnouncer,
        endpoint: str,
    ) -> None:
        self._profiles = profiles
        self._subscriptions = subscriptions
        self._connections = connections
        self._clock = clock
        self._announcer = announcer
        self._endpoint = endpoint

    def deliver(
        self,
        profile: Profile,
        frame: ServerFrame,
        *,
        skip: str | None = None,
        device: str | None = None,
    ) -> int:
        """Post a frame to every live connection of a user (of one of its devices, if
        `device` names one: its own copy, docs/protocol.md §8); returns how many took it.

        A connection that answers Gone is forgotten on our side too.
        """
        now = self._clock.now_ms()
        live = (
            profile.live_connections(now)
            if device is None
            else (profile.live_connections_of(device, now))
        )
        targets = [c for c in live if c != skip]
        if not targets:
            return 0
        if len(targets) == 1:
            return int(self.post(profile.user_id, targets[0], frame))
        # Together, not one after another: the sender's ack waits for the slowest post,
        # not for the sum of them (docs/performance.md).
        posted = _POSTING.map(
            lambda connection_id: self.post(profile.user_id, connection_id, frame), targets
        )
        return sum(posted)

    def deliver_copies(
        self, profile: Profile, copies: Sequence[tuple[str, ServerFrame]]
    ) -> list[bool]:
        """Post each (device, frame) to that device's live connections, every post of
        every device together (docs/protocol.md §8: each device its own copy); for each,
        whether a connection took it. Runs after the sender's ack went out: a post that
        fails (not Gone) is logged and counted, and its device is left to its queue and a
        push, never an error for the sender."""
        now = self._clock.now_ms()
        targets = [
            (index, connection_id)
            for index, (device, _) in enumerate(copies)
            for connection_id in profile.live_connections_of(device, now)
        ]

        def post(target: tuple[int, str]) -> bool:
            index, connection_id = target
            try:
                return self.post(profile.user_id, connection_id, copies[index][1])
            except Exception:
                logger.warning("live post failed; left queued", exc_info=True)
                count(Metric.LIVE_POSTS_FAILED)
                return False

        taken = [False] * len(copies)
        posted = map(post, targets) if len(targets) == 1 else _POSTING.map(post, targets)
        for (index, _), took in zip(targets, posted, strict=True):
            taken[index] = taken[index] or took
        return taken

    def post(self, user_id: str, connection_id: str, frame: ServerFrame) -> bool:
        """Post to one connection of a user; False (and the connection forgotten) if gone."""
        try:
            self._connections.post(connection_id, frame)
        except ConnectionGone:
            count(Metric.STALE_CONNECTIONS_REMOVED)
            self.connection_gone(user_id, connection_id)
            return False
        return True

    def connection_opened(
        self,
        user_id: str,
        connection_id: str,
        connected_at: int,
        device_id: str = PRIMARY_DEVICE_ID,
    ) -> None:
        """Record a connection of one of the user's devices ($connect). If this fails,
        nothing stays recorded: a handshake that API Gateway refuses must not leave its
        user looking online."""
        try:
            profile = self._profiles.add_connection(user_id, connection_id, connected_at, device_id)
        except Exception:
            # A write that timed out may still have been made.
            self._undo_connect(user_id, connection_id)
            raise
        if profile.devices.device(device_id) is None:
            # Removed since its handshake was authorized (docs/protocol.md §8): setDevices
            # closed the connections it found, and this one was not there yet.
            self._undo_connect(user_id, connection_id)
            raise AccessDenied(f"device {device_id!r} is not one of the user's devices")
        count(Metric.CONNECTIONS_OPENED)
        now = self._clock.now_ms()
        stale = profile.stale_connections(now)
        if stale:
            try:
                self._profiles.prune_connections(user_id, stale)
            except Exception:
                # Housekeeping: stale entries count as closed whether pruned or not.
                logger.warning("could not prune stale connections", exc_info=True)
        if profile.live_connections(now) == [connection_id]:
            # Back online: a flap if the user went offline only just now.
            flapping = (profile.last_seen or 0) >= now - PRESENCE_FLAP_WINDOW_MS
            self._announce(self._change(user_id, online=True, at_ms=now, flapping=flapping))
        self._replace_oldest(profile, device_id, now)

    def _replace_oldest(self, profile: Profile, device_id: str, now_ms: int) -> None:
        """A device holds at most MAX_CONNECTIONS_PER_DEVICE connections (docs/protocol.md
        §1): past it, the ones of that device that opened first are told REPLACED,
        forgotten (no more posts), and closed (1008 locally). Never fails the handshake:
        one left open is only forgotten."""
        live = profile.live_connections_of(device_id, now_ms)
        excess = len(live) - MAX_CONNECTIONS_PER_DEVICE
        if excess <= 0:
            return
        oldest = sorted(live, key=lambda cid: (profile.connections[cid], cid))[:excess]
        for connection_id in oldest:
            count(Metric.CONNECTIONS_REPLACED)
            try:
                self._close(
                    profile.user_id,
                    connection_id,
                    ErrorCode.REPLACED,
                    "this device opened a newer connection; this one closes",
                )
            except Exception:
                logger.warning("could not close a replaced connection", exc_info=True)

    def close_removed_device(self, profile: Profile, device_id: str) -> int:
        """Close every connection of a device no longer in the user's list
        (docs/protocol.md §8: DEVICE_REMOVED, 1008 locally); how many. One that fails to
        close is logged: the device's handshakes are refused from now on either way."""
        closed = 0
        for connection_id in profile.live_connections_of(device_id, self._clock.now_ms()):
            try:
                self._close(
                    profile.user_id,
                    connection_id,
                    ErrorCode.DEVICE_REMOVED,
                    "this device was removed from the user's devices",
                )
                closed += 1
            except Exception:
                logger.warning("could not close a removed device's connection", exc_info=True)
        return closed

    def close_refusing(self, user_id: str, connection_id: str) -> None:
        """Close a connection that keeps sending refused frames (docs/protocol.md §3)."""
        self._close(
            user_id,
            connection_id,
            ErrorCode.TOO_MANY_REFUSED,
            "too many refused frames; this connection closes",
        )

    def _close(self, user_id: str, connection_id: str, why: ErrorCode, message: str) -> None:
        """Close a connection on the server's own account: first an error frame saying why
        (API Gateway's DeleteConnection cannot choose a close code), then no more posts,
        then the close. Its $disconnect cleans up what it watched."""
        if not self.post(user_id, connection_id, ErrorFrame(code=why, message=message, ref=None)):
            return  # closed already (and now forgotten): by us for an earlier frame, say
        closed = self._profiles.remove_connection(user_id, connection_id, self._clock.now_ms())
        if closed is not None:
            self._announce_if_offline(closed)
        self._connections.close(connection_id)

    def _undo_connect(self, user_id: str, connection_id: str) -> None:
        count(Metric.CONNECTS_UNDONE)
        try:
            self._profiles.forget_connection(user_id, connection_id)
        except Exception:
            # Left behind, the entry is dropped by the first post that meets a 410.
            logger.warning("could not undo a failed connect", exc_info=True)

    def connection_closed(self, user_id: str, connection_id: str) -> None:
        """Forget a connection and everything it watched ($disconnect). Idempotent.

        The connection leaves the profile first: from then on no subscription can be
        recorded for it, so the watch list deleted next is complete.
        """
        closed = self._profiles.remove_connection(user_id, connection_id, self._clock.now_ms())
        self._subscriptions.forget_watches(user_id, connection_id)
        if closed is None:
            return  # forgotten already (a post found it gone)
        count(Metric.CONNECTIONS_CLOSED)
        self._announce_if_offline(closed)

    def connection_gone(self, user_id: str, connection_id: str) -> None:
        """A post found the connection closed (410): forget it on the profile only.

        What it watched is its own $disconnect's to clean up (or the TTL's, if that was
        lost): never the work of whoever happened to post to it.
        """
        closed = self._profiles.remove_connection(user_id, connection_id, self._clock.now_ms())
        if closed is not None:
            self._announce_if_offline(closed)

    def _announce_if_offline(self, closed: ClosedConnection) -> None:
        """The last connection closed: the user went offline. It is a flap if the closed
        connection, or the user's previous close, was recent (docs/protocol.md §2)."""
        profile = closed.profile
        now = self._clock.now_ms()
        if profile.is_online(now):
            return
        recent = now - PRESENCE_FLAP_WINDOW_MS
        flapping = closed.opened_at >= recent or (closed.seen_before or 0) >= recent
        at_ms = profile.last_seen or now  # the stamp the close wrote
        self._announce(self._change(profile.user_id, online=False, at_ms=at_ms, flapping=flapping))

    def _change(self, user_id: str, *, online: bool, at_ms: int, flapping: bool) -> PresenceEvent:
        settle_until = at_ms + PRESENCE_SETTLE_MS if flapping else 0
        return PresenceEvent(user_id, self._endpoint, False, online, at_ms, settle_until)

    def _announce(self, event: PresenceEvent) -> None:
        """Hand a change to the presence function. Never fails the caller: a watcher that
        misses it still reads the truth with its next getPresence."""
        try:
            self._announcer.announce(event)
        except Exception:
            count(Metric.PRESENCE_ANNOUNCEMENTS_FAILED)
            logger.warning("could not announce a presence change", exc_info=True)
            return
        count(Metric.PRESENCE_CHANGES_ANNOUNCED)
