"""The presence function: telling a user's watchers what they may see of them now, in
this cell and, through their Relays, in the cells of watchers elsewhere; and posting the
changes those cells relay here to this cell's watchers.

A watcher no longer allowed to see the user is shown an unknown user, and its
subscription ends; one the user blocks is shown nothing, and its subscription ends too
(logic/visibility.py says who may see whom).
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

from messenger.contract import PRESENCE_SETTLE_MS, Metric
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.subscriptions import Subscription, Subscriptions
from messenger.logic.clock import Clock
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.peers import Peers
from messenger.logic.visibility import Visibility, presence_entry, unknown_entry
from messenger.observability import count, logger
from messenger.transport.presence_events import PresenceEvent, SettleQueue
from messenger.transport.relay_records import MAX_WATCHERS_PER_CHANGE, PresenceChanged
from messenger_protocol.frames import PresenceEntry, PresenceFrame
from messenger_protocol.names import PresenceVisibility

# Posts to watchers run side by side: a user with many watchers is told about in seconds.
PARALLEL_POSTS = 16
# A user flapping online and offline makes the presence function go round again (see
# _tell_until_settled); past this many rounds the next change's own invocation takes over.
MAX_ROUNDS = 5


class PresenceChanges:
    """The presence function: tells a user's watchers what they may see of them now."""

    def __init__(
        self,
        profiles: Profiles,
        subscriptions: Subscriptions,
        visibility: Visibility,
        live: LiveDelivery,
        clock: Clock,
        peers: Peers,
        settle_queue: SettleQueue,
    ) -> None:
        self._profiles = profiles
        self._subscriptions = subscriptions
        self._visibility = visibility
        self._live = live
        self._clock = clock
        self._peers = peers
        self._settle_queue = settle_queue

    def tell_change(self, change: PresenceEvent) -> None:
        """Tell watchers of one online/offline change, unless a newer change of the same
        user overtook it (docs/protocol.md §2).

        A flap (a change close behind the user's previous one) is told only once it has
        held PRESENCE_SETTLE_MS: a burst of flaps reaches watchers as its final state.
        Nothing waits for that: the flap goes to the settle queue for the rest of its
        settle time, and comes back to `tell_settled`. A change after a quiet spell is
        told at once.
        """
        if change.online is None:
            self.tell_watchers(change.user_id)
            return
        wait_ms = change.settle_until_ms - self._clock.now_ms()
        if wait_ms > 0:
            self._settle_queue.hold(change, settle_delay_seconds(wait_ms))
            count(Metric.PRESENCE_CHANGES_HELD)
            return
        self.tell_settled(change)

    def tell_settled(self, change: PresenceEvent) -> None:
        """Tell a change that needs no more settling (a flap back from the settle queue,
        or a change after a quiet spell), unless a newer change overtook it.

        Overtaken means the user is no longer in the state the change made, or (for going
        offline) closed a connection again since, which a newer offline change tells. The
        change that holds is never overtaken: it is told. A flap back from the queue is
        never held again, even if a newer change came close behind it: it is overtaken
        by that change or told. Nothing is written for this: the profile's connections
        and lastSeen say it all.
        """
        profile = self._profiles.get_profile(change.user_id, consistent=True)
        if profile is None:
            return
        if self._overtaken(profile, change):
            count(Metric.PRESENCE_CHANGES_COALESCED)
            return
        self._tell_until_settled(profile)

    def _overtaken(self, profile: Profile, change: PresenceEvent) -> bool:
        if profile.is_online(self._clock.now_ms()) != change.online:
            return True
        return not change.online and (profile.last_seen or 0) > change.at_ms

    def tell_watchers(self, user_id: str) -> None:
        """Post the user's presence as it is now to every watcher allowed to see it."""
        self._tell_until_settled(self._profiles.get_profile(user_id, consistent=True))

    def _tell_until_settled(self, profile: Profile | None) -> None:
        """Invocations are not ordered (two changes in quick succession run side by side),
        so each reads the user again when done, and goes round once more if the
        presence changed meanwhile: whichever invocation finishes last has told every
        watcher the final state. A watcher may hear the same state twice; never a stale
        one last.
        """
        if profile is None:
            return
        user_id = profile.user_id
        for _ in range(MAX_ROUNDS):
            told = self._state(profile)
            self._tell(profile, hidden_only=False)
            after = self._profiles.get_profile(user_id, consistent=True)
            if after is None or self._state(after) == told:
                return
            profile = after

    def forget_hidden_watchers(self, user_id: str) -> None:
        """After a visibility change: watchers no longer allowed see an unknown user."""
        profile = self._profiles.get_profile(user_id, consistent=True)
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
            for page in self._subscriptions.watchers_of(profile.user_id, self._clock.now_s()):
                audience = self._visibility.audience(profile, {s.watcher for s in page})
                futures = []
                for subscription in page:
                    if subscription.watcher in audience.blocked:
                        self._subscriptions.drop_subscription(subscription)  # silently
                        continue
                    keep = subscription.watcher in audience.allowed
                    if hidden_only and keep:
                        continue  # nothing changed for them
                    frame = shown if keep else hidden
                    futures.append(pool.submit(self._post, subscription, frame, keep))
                self._count(futures)
        if self._peers.cells:  # with no other cell, no interest can have been recorded
            self._tell_cells(profile, entry, hidden_only=hidden_only)

    def _tell_cells(self, profile: Profile, entry: PresenceEntry, *, hidden_only: bool) -> None:
        """Tell the cells whose users watch this one: one asynchronous Relay call per cell
        (and page of interests), naming the watchers allowed to see the change and those
        no longer allowed. The interests of the latter end here, as their subscriptions
        end in their cell; those of watchers the user blocks end here too, and their cell
        hears nothing (their subscriptions there stay, and are never told again). An
        expired interest is skipped; one whose watcher has gone costs its cell a call that
        finds no subscription, until it expires."""
        for page in self._subscriptions.interests_in(profile.user_id, self._clock.now_s()):
            audience = self._visibility.audience(profile, {interest.watcher for interest in page})
            allowed = audience.allowed
            by_cell: dict[str, tuple[list[str], list[str]]] = {}
            for interest in page:
                told, hidden = by_cell.setdefault(interest.cell, ([], []))
                if interest.watcher in audience.blocked:
                    continue  # its interest ends below, and its cell is told nothing
                if interest.watcher not in allowed:
                    hidden.append(interest.watcher)
                elif not hidden_only:
                    told.append(interest.watcher)
            for cell, (told, hidden) in by_cell.items():
                for start in range(0, max(len(told), len(hidden)), MAX_WATCHERS_PER_CHANGE):
                    change = PresenceChanged(
                        user=profile.user_id,
                        entry=entry,
                        watchers=told[start : start + MAX_WATCHERS_PER_CHANGE],
                        hidden_from=hidden[start : start + MAX_WATCHERS_PER_CHANGE],
                    )
                    if change.watchers or change.hidden_from:
                        self._notify(cell, change)
            gone = [interest for interest in page if interest.watcher not in allowed]
            if gone:
                self._subscriptions.drop_interests(gone)

    def _notify(self, cell: str, change: PresenceChanged) -> None:
        try:
            self._peers.presence_changed(cell, change)
        except Exception:
            # That cell's watchers miss this change; their next getPresence reads the truth.
            logger.warning("could not tell a cell of a presence change", exc_info=True)
            count(Metric.PRESENCE_RELAYS_FAILED)
        else:
            count(Metric.PRESENCE_CHANGES_RELAYED)

    def relay_change(self, change: PresenceChanged) -> None:
        """The Relay's `presenceChanged`: post a change of a user of another cell to this
        cell's subscriptions on them whose watcher is named (those hidden from are shown
        an unknown user, and their subscriptions end)."""
        told, hidden_from = set(change.watchers), set(change.hidden_from)
        shown = PresenceFrame(users=[change.entry])
        hidden = PresenceFrame(users=[unknown_entry(change.user)])
        with ThreadPoolExecutor(max_workers=PARALLEL_POSTS) as pool:
            for page in self._subscriptions.watchers_of(change.user, self._clock.now_s()):
                futures = [
                    pool.submit(self._post, subscription, shown, True)
                    if subscription.watcher in told
                    else pool.submit(self._post, subscription, hidden, False)
                    for subscription in page
                    if subscription.watcher in told or subscription.watcher in hidden_from
                ]
                self._count(futures)

    def _count(self, futures: list[Future[bool]]) -> None:
        """Wait for a page's posts and count their outcomes, once each: a value per post
        would make powertools write an EMF record every 100 posts (50 for a change told
        to 5,000 watchers)."""
        outcomes: Counter[Metric] = Counter()
        for future in futures:
            error = future.exception()
            if error is not None:
                # One watcher we could not reach says nothing about the others.
                logger.warning("could not tell a watcher", exc_info=error)
                outcomes[Metric.PRESENCE_POSTS_FAILED] += 1
            elif future.result():
                outcomes[Metric.PRESENCE_FRAMES_SENT] += 1
            else:
                outcomes[Metric.SUBSCRIPTIONS_DROPPED] += 1
        for metric, times in outcomes.items():
            count(metric, times)

    def _post(self, subscription: Subscription, frame: PresenceFrame, keep: bool) -> bool:
        """Tell one watcher; True if its subscription stays. It goes when the watcher is
        no longer allowed, or closed: then its connection is forgotten too, as any post
        that meets a closed connection does, and the rest of what it watched is left to
        its own $disconnect. A closed watcher costs a bounded few calls, here only."""
        if not self._live.post(subscription.watcher, subscription.connection_id, frame):
            keep = False
        if not keep:
            self._subscriptions.drop_subscription(subscription)
        return keep


# The longest a flap waits on the settle queue: the settle time, in SQS's whole seconds.
MAX_SETTLE_DELAY_SECONDS = max(1, math.ceil(PRESENCE_SETTLE_MS / 1000))


def settle_delay_seconds(wait_ms: int) -> int:
    """The settle queue's DelaySeconds for the rest of a settle time: whole seconds,
    rounded up, at least one (SQS's unit), never more than the settle time itself."""
    return max(1, min(math.ceil(wait_ms / 1000), MAX_SETTLE_DELAY_SECONDS))
