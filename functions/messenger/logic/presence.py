"""Presence asked for: getPresence (with subscriptions), setPresenceVisibility, and the
Relay's `presence`, which answers a watcher of another cell.

Who may see whom is logic/visibility.py; telling watchers about changes is the presence
function's, logic/presence_changes.py.
"""

from __future__ import annotations

import secrets

from messenger.contract import STALE_CONNECTION_SECONDS, Metric
from messenger.dal.contacts import Contacts, VisibilityOvertaken
from messenger.dal.profiles import Profiles
from messenger.dal.subscriptions import (
    ConnectionClosed,
    Interest,
    SubscriptionCapReached,
    Subscriptions,
    WatcherCapReached,
)
from messenger.errors import BadRequest, RateLimited
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.peers import Peers
from messenger.logic.visibility import (
    Visibility,
    presence_entry,
    unknown_entry,
    visibility_digest,
)
from messenger.observability import count
from messenger.transport.presence_events import PresenceAnnouncer, PresenceEvent
from messenger.transport.relay_records import PresenceAnswer, PresenceQuery
from messenger_protocol.frames import (
    PresenceEntry,
    PresenceFrame,
    PresenceVisibilityFrame,
    SetPresenceVisibility,
)
from messenger_protocol.limits import MAX_SUBSCRIPTIONS_PER_CONNECTION, MAX_WATCHERS_PER_USER

# An add/remove edit that another setting overtook is applied again, this many times in
# all, before the client is asked to resend it.
_EDIT_ATTEMPTS = 3
_EDIT_RETRY_AFTER_MS = 500


class Presence:
    """getPresence and setPresenceVisibility for users of this cell, and the Relay's
    `presence` for watchers of other cells."""

    def __init__(
        self,
        profiles: Profiles,
        subscriptions: Subscriptions,
        contacts: Contacts,
        visibility: Visibility,
        clock: Clock,
        announcer: PresenceAnnouncer,
        endpoint: str,
        cells: Cells,
        peers: Peers,
    ) -> None:
        self._profiles = profiles
        self._subscriptions = subscriptions
        self._contacts = contacts
        self._visibility = visibility
        self._clock = clock
        self._announcer = announcer
        self._endpoint = endpoint
        self._cells = cells
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
        local, by_cell = self._cells.split(asked)
        foreign = [uid for cell_users in by_cell.values() for uid in cell_users]
        profiles = self._profiles.get_profiles(local) if local else {}
        visible = self._visibility.visible_to(watcher, profiles.values())
        recorded = [uid for uid in local if uid in visible]
        if subscribe:
            subscribe = self._subscribe(watcher, connection_id, asked, [*recorded, *foreign])
        entries: dict[str, PresenceEntry] = {}
        hidden: list[str] = []
        for cell, cell_users in by_cell.items():
            answer = self._peers.presence(cell, PresenceQuery(watcher, cell_users, subscribe))
            entries |= {entry.user_id: entry for entry in answer.users}
            hidden += [uid for uid in cell_users if uid not in set(answer.allowed)]
        if subscribe and hidden:
            self._subscriptions.drop_subscriptions(connection_id, hidden)
        if subscribe and recorded:
            # Read again now that we are subscribed: a change landing meanwhile is
            # either in this answer or in a presence frame to come.
            profiles.update(self._profiles.get_profiles(recorded))
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
            self._subscriptions.add_subscriptions(
                watcher,
                connection_id,
                asked,
                recorded,
                self._clock.now_s(),
                self._clock.now_s() + STALE_CONNECTION_SECONDS,
            )
        except SubscriptionCapReached:
            raise BadRequest(
                f"userIds: a connection may watch at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} users"
            ) from None
        except WatcherCapReached as full:
            raise BadRequest(
                f"userIds: {', '.join(full.watched)} already watched by "
                f"{MAX_WATCHERS_PER_USER} connections"
            ) from None
        except ConnectionClosed:
            return False
        return True

    def answer_peer(self, cell: str, query: PresenceQuery) -> PresenceAnswer:
        """The Relay's `presence`: what a watcher of `cell` may see of users of this cell;
        with subscribe, `cell` is told of their changes until the interest expires (a
        connection's longest life; every subscribe renews it)."""
        asked = list(dict.fromkeys(query.user_ids))
        profiles = self._profiles.get_profiles(asked)
        visible = self._visibility.visible_to(query.watcher, profiles.values())
        allowed = [uid for uid in asked if uid in visible]
        if query.subscribe and allowed:
            self._subscriptions.add_interests(
                [Interest(uid, cell, query.watcher) for uid in allowed],
                self._clock.now_s() + STALE_CONNECTION_SECONDS,
            )
            # Read again once the interest is recorded, as a local subscribe does.
            profiles.update(self._profiles.get_profiles(allowed))
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

    # --- setPresenceVisibility --------------------------------------------------------

    def set_visibility(self, user_id: str, frame: SetPresenceVisibility) -> PresenceVisibilityFrame:
        """Replace the setting (`contacts`), or edit the stored list (`add`/`remove`).

        An edit applies to the list in effect when it was read and is written only if no
        other setting took effect meanwhile; otherwise it is read and applied again, so
        that two devices adding contacts at once both keep theirs (docs/protocol.md §2).
        """
        for _ in range(_EDIT_ATTEMPTS):
            profile = self._profiles.get_profile(user_id, consistent=True)
            if profile is None:
                raise RuntimeError("an authorized caller has no profile")
            if frame.edits_contacts:
                contacts = frame.contacts_after(self._contacts.contacts_of(profile))
                based_on: str | None = profile.visibility_generation or ""
            else:
                contacts = frame.allowed()
                based_on = None
            digest = visibility_digest(frame.visibility, contacts)
            if profile.visibility_digest == digest:
                break
            # Generations sort by time: the newest setting wins, whatever finishes first.
            generation = f"{self._clock.now_us():017d}{secrets.token_hex(2)}"
            try:
                self._contacts.set_visibility(
                    user_id, frame.visibility, contacts, generation, digest, based_on=based_on
                )
            except VisibilityOvertaken:
                if based_on is None:
                    break  # a newer setting took effect: as if this one came just before it
                continue  # an edit is applied again to the list now in effect
            self._tell_hidden(user_id)
            break
        else:
            raise RateLimited(
                "the contact list kept changing; resend later", retry_after=_EDIT_RETRY_AFTER_MS
            )
        return PresenceVisibilityFrame(visibility=frame.visibility, count=len(contacts))

    def _tell_hidden(self, user_id: str) -> None:
        """Watchers who may no longer see the user hear what an unknown user looks like."""
        try:
            self._announcer.announce(PresenceEvent(user_id, self._endpoint, hidden_only=True))
        except Exception:
            count(Metric.PRESENCE_ANNOUNCEMENTS_FAILED)
