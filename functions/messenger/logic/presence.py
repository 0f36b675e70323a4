"""Presence: who may see whom (setPresenceVisibility), getPresence with subscriptions, and
telling watchers about changes (the presence function).

To anyone its owner does not allow, a user looks exactly like an unknown one: offline,
lastSeen null, and a subscription by them is not recorded and hears nothing. A user
always sees their own presence.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from messenger.contract import STALE_CONNECTION_SECONDS, Metric
from messenger.dal.users import (
    ConnectionClosed,
    Profile,
    Subscription,
    SubscriptionCapReached,
    Users,
    VisibilityOvertaken,
)
from messenger.errors import BadRequest
from messenger.logic.clock import Clock
from messenger.logic.live import Live, presence_entry, unknown_entry
from messenger.observability import count, logger
from messenger.transport.presence_events import PresenceAnnouncer, PresenceEvent
from messenger_protocol.frames import (
    PresenceEntry,
    PresenceFrame,
    PresenceVisibilityFrame,
    SetPresenceVisibility,
)
from messenger_protocol.limits import MAX_SUBSCRIPTIONS_PER_CONNECTION
from messenger_protocol.names import PresenceVisibility

# Posts to watchers run side by side: a user with many watchers is told about in seconds.
PARALLEL_POSTS = 16
# A user flapping online and offline makes the presence function go round again (see
# tell_watchers); past this many rounds the next change's own invocation takes over.
MAX_ROUNDS = 5


def visibility_digest(visibility: PresenceVisibility, contacts: Iterable[str]) -> str:
    """Names a setting: the same setting sent again (every reconnect) writes nothing."""
    text = "\n".join([visibility.value, *sorted(contacts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Presence:
    def __init__(
        self, users: Users, clock: Clock, announcer: PresenceAnnouncer, endpoint: str
    ) -> None:
        self._users = users
        self._clock = clock
        self._announcer = announcer
        self._endpoint = endpoint

    # --- getPresence ------------------------------------------------------------------

    def look_up(
        self, watcher: str, connection_id: str, user_ids: list[str], subscribe: bool
    ) -> PresenceFrame:
        asked = list(dict.fromkeys(user_ids))
        profiles = self._users.get_profiles(asked)
        visible = self._visible_to(watcher, profiles.values())
        if subscribe:
            recorded = [uid for uid in asked if uid in visible]
            try:
                self._users.add_subscriptions(
                    watcher,
                    connection_id,
                    asked,
                    recorded,
                    self._clock.now_s() + STALE_CONNECTION_SECONDS,
                )
            except SubscriptionCapReached:
                raise BadRequest(
                    f"userIds: a connection may watch at most {MAX_SUBSCRIPTIONS_PER_CONNECTION}"
                    " users"
                ) from None
            except ConnectionClosed:
                pass  # the answer goes nowhere, and nothing was recorded
            if recorded:
                # Read again now that we are subscribed: a change landing meanwhile is
                # either in this answer or in a presence frame to come.
                profiles.update(self._users.get_profiles(recorded))
        now = self._clock.now_ms()
        return PresenceFrame(
            users=[
                presence_entry(uid, profiles.get(uid), now)
                if uid in visible
                else unknown_entry(uid)
                for uid in asked
            ]
        )

    def _visible_to(self, watcher: str, profiles: Iterable[Profile]) -> set[str]:
        """The users among `profiles` whose presence `watcher` may see."""
        visible: set[str] = set()
        listing: list[Profile] = []
        for profile in profiles:
            if profile.user_id == watcher or profile.visibility is PresenceVisibility.EVERYONE:
                visible.add(profile.user_id)
            elif profile.visibility is PresenceVisibility.CONTACTS:
                listing.append(profile)
        if listing:
            visible |= self._users.contacts_among(listing, watcher)
        return visible

    # --- setPresenceVisibility --------------------------------------------------------

    def set_visibility(self, user_id: str, frame: SetPresenceVisibility) -> PresenceVisibilityFrame:
        contacts = frame.allowed()
        digest = visibility_digest(frame.visibility, contacts)
        profile = self._users.get_profile(user_id, consistent=True)
        if profile is None:
            raise RuntimeError("an authorized caller has no profile")
        if profile.visibility_digest != digest:
            # Generations sort by time: the newest setting wins, whatever finishes first.
            generation = f"{self._clock.now_us():017d}{secrets.token_hex(2)}"
            try:
                self._users.set_visibility(user_id, frame.visibility, contacts, generation, digest)
            except VisibilityOvertaken:
                pass  # a newer setting took effect: as if this one came just before it
            else:
                self._tell_hidden(user_id)
        return PresenceVisibilityFrame(visibility=frame.visibility, count=len(contacts))

    def _tell_hidden(self, user_id: str) -> None:
        """Watchers who may no longer see the user hear what an unknown user looks like."""
        try:
            self._announcer.announce(PresenceEvent(user_id, self._endpoint, hidden_only=True))
        except Exception:
            count(Metric.PRESENCE_ANNOUNCEMENTS_FAILED)


class PresenceChanges:
    """The presence function: tells a user's watchers what they may see of them now."""

    def __init__(self, users: Users, live: Live, clock: Clock) -> None:
        self._users = users
        self._live = live
        self._clock = clock

    def tell_watchers(self, user_id: str) -> None:
        """Post the user's presence as it is now to every watcher allowed to see it.

        Invocations are not ordered (two changes in quick succession run side by side),
        so each reads the user again when done, and goes round once more if the
        presence changed meanwhile: whichever invocation finishes last has told every
        watcher the final state. A watcher may hear the same state twice; never a stale
        one last.
        """
        profile = self._users.get_profile(user_id, consistent=True)
        for _ in range(MAX_ROUNDS):
            if profile is None:
                return
            told = self._state(profile)
            self._tell(profile, hidden_only=False)
            profile = self._users.get_profile(user_id, consistent=True)
            if profile is None or self._state(profile) == told:
                return

    def forget_hidden_watchers(self, user_id: str) -> None:
        """After a visibility change: watchers no longer allowed see an unknown user."""
        profile = self._users.get_profile(user_id, consistent=True)
        if profile is not None:
            self._tell(profile, hidden_only=True)

    def _state(self, profile: Profile) -> tuple[PresenceEntry, PresenceVisibility, str | None]:
        entry = presence_entry(profile.user_id, profile, self._clock.now_ms())
        return entry, profile.visibility, profile.visibility_generation

    def _tell(self, profile: Profile, *, hidden_only: bool) -> None:
        entry = presence_entry(profile.user_id, profile, self._clock.now_ms())
        shown = PresenceFrame(users=[entry])
        hidden = PresenceFrame(users=[unknown_entry(profile.user_id)])
        with ThreadPoolExecutor(max_workers=PARALLEL_POSTS) as pool:
            for page in self._users.watchers_of(profile.user_id, self._clock.now_s()):
                allowed = self._allowed(profile, {s.watcher for s in page})
                futures = []
                for subscription in page:
                    keep = subscription.watcher in allowed
                    if hidden_only and keep:
                        continue  # nothing changed for them
                    frame = shown if keep else hidden
                    futures.append(pool.submit(self._post, subscription, frame, keep))
                for future in futures:
                    self._count(future)

    def _count(self, future: Future[bool]) -> None:
        error = future.exception()
        if error is not None:
            # One watcher we could not reach says nothing about the others.
            logger.warning("could not tell a watcher", exc_info=error)
            count(Metric.PRESENCE_POSTS_FAILED)
        elif future.result():
            count(Metric.PRESENCE_FRAMES_SENT)
        else:
            count(Metric.SUBSCRIPTIONS_DROPPED)

    def _allowed(self, profile: Profile, watchers: set[str]) -> set[str]:
        if profile.visibility is PresenceVisibility.EVERYONE:
            return watchers
        allowed = {profile.user_id} & watchers
        if profile.visibility is PresenceVisibility.CONTACTS:
            allowed |= self._users.contacts_of_among(profile, watchers)
        return allowed

    def _post(self, subscription: Subscription, frame: PresenceFrame, keep: bool) -> bool:
        """Tell one watcher; True if its subscription stays. It goes when the watcher is
        no longer allowed, or closed: then its connection is forgotten too, as any post
        that meets a closed connection does, and the rest of what it watched is left to
        its own $disconnect. A closed watcher costs a bounded few calls, here only."""
        if not self._live.post(subscription.watcher, subscription.connection_id, frame):
            keep = False
        if not keep:
            self._users.drop_subscription(subscription)
        return keep
