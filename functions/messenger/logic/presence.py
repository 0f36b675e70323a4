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
    Interest,
    Profile,
    Subscription,
    SubscriptionCapReached,
    Users,
    VisibilityOvertaken,
)
from messenger.errors import BadRequest
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.live import Live, presence_entry, unknown_entry
from messenger.logic.peers import (
    MAX_WATCHERS_PER_CHANGE,
    Peers,
    PresenceAnswer,
    PresenceChanged,
    PresenceQuery,
)
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
        self,
        users: Users,
        clock: Clock,
        announcer: PresenceAnnouncer,
        endpoint: str,
        cells: Cells | None = None,
        peers: Peers | None = None,
    ) -> None:
        self._users = users
        self._clock = clock
        self._announcer = announcer
        self._endpoint = endpoint
        self._cells = cells or Cells(None)
        self._peers = peers

    # --- getPresence ------------------------------------------------------------------

    def look_up(
        self, watcher: str, connection_id: str, user_ids: list[str], subscribe: bool
    ) -> PresenceFrame:
        """What the watcher may see of these users; with subscribe, this connection hears
        of their changes from now on.

        Users at home in other cells are asked of their cells, one Relay call per cell,
        which apply their visibility. Their subscriptions are recorded here, like local
        ones, BEFORE the peer records its interest and reads: a change from then on finds
        them. Those the peer does not allow are removed again right after.
        """
        asked = list(dict.fromkeys(user_ids))
        by_cell = self._cells.by_home(asked)
        local = by_cell.pop(None, [])
        foreign = [uid for cell_users in by_cell.values() for uid in cell_users]
        profiles = self._users.get_profiles(local) if local else {}
        visible = self._visible_to(watcher, profiles.values())
        recorded = [uid for uid in local if uid in visible]
        if subscribe:
            subscribe = self._subscribe(watcher, connection_id, asked, [*recorded, *foreign])
        entries: dict[str, PresenceEntry] = {}
        hidden: list[str] = []
        for cell, cell_users in by_cell.items():
            assert cell is not None and self._peers is not None
            answer = self._peers.presence(cell, PresenceQuery(watcher, cell_users, subscribe))
            entries |= {entry.user_id: entry for entry in answer.users}
            hidden += [uid for uid in cell_users if uid not in set(answer.allowed)]
        if subscribe and hidden:
            self._users.drop_subscriptions(connection_id, hidden)
        if subscribe and recorded:
            # Read again now that we are subscribed: a change landing meanwhile is
            # either in this answer or in a presence frame to come.
            profiles.update(self._users.get_profiles(recorded))
        now = self._clock.now_ms()
        entries |= {
            uid: presence_entry(uid, profiles.get(uid), now)
            if uid in visible
            else unknown_entry(uid)
            for uid in local
        }
        return PresenceFrame(users=[entries.get(uid) or unknown_entry(uid) for uid in asked])

    def _subscribe(
        self, watcher: str, connection_id: str, asked: list[str], recorded: list[str]
    ) -> bool:
        """Record the connection's subscriptions; False if the connection is closed (then
        nothing is recorded and the answer goes nowhere)."""
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
                f"userIds: a connection may watch at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} users"
            ) from None
        except ConnectionClosed:
            return False
        return True

    def answer_peer(self, cell: str, query: PresenceQuery) -> PresenceAnswer:
        """The Relay's `presence`: what a watcher of `cell` may see of users of this cell;
        with subscribe, `cell` is told of their changes until the interest expires (a
        connection's longest life; every subscribe renews it)."""
        asked = list(dict.fromkeys(query.user_ids))
        profiles = self._users.get_profiles(asked)
        visible = self._visible_to(query.watcher, profiles.values())
        allowed = [uid for uid in asked if uid in visible]
        if query.subscribe and allowed:
            self._users.add_interests(
                [Interest(uid, cell, query.watcher) for uid in allowed],
                self._clock.now_s() + STALE_CONNECTION_SECONDS,
            )
            # Read again once the interest is recorded, as a local subscribe does.
            profiles.update(self._users.get_profiles(allowed))
        now = self._clock.now_ms()
        return PresenceAnswer(
            users=[
                presence_entry(uid, profiles.get(uid), now)
                if uid in visible
                else unknown_entry(uid)
                for uid in asked
            ],
            allowed=allowed,
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

    def __init__(self, users: Users, live: Live, clock: Clock, peers: Peers | None = None) -> None:
        self._users = users
        self._live = live
        self._clock = clock
        self._peers = peers

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
        if self._peers is not None:
            self._tell_cells(profile, entry, hidden_only=hidden_only)

    def _tell_cells(self, profile: Profile, entry: PresenceEntry, *, hidden_only: bool) -> None:
        """Tell the cells whose users watch this one: one asynchronous Relay call per cell
        (and page of interests), naming the watchers allowed to see the change and those
        no longer allowed. The interests of the latter end here, as their subscriptions
        end in their cell. An expired interest is skipped; one whose watcher has gone
        costs its cell a call that finds no subscription, until it expires."""
        assert self._peers is not None
        for page in self._users.interests_in(profile.user_id, self._clock.now_s()):
            allowed = self._allowed(profile, {interest.watcher for interest in page})
            by_cell: dict[str, tuple[list[str], list[str]]] = {}
            for interest in page:
                told, hidden = by_cell.setdefault(interest.cell, ([], []))
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
                self._users.drop_interests(gone)

    def _notify(self, cell: str, change: PresenceChanged) -> None:
        assert self._peers is not None
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
            for page in self._users.watchers_of(change.user, self._clock.now_s()):
                futures = [
                    pool.submit(self._post, subscription, shown, True)
                    if subscription.watcher in told
                    else pool.submit(self._post, subscription, hidden, False)
                    for subscription in page
                    if subscription.watcher in told or subscription.watcher in hidden_from
                ]
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
