"""Which cell is a user's home (docs/protocol.md §6), as this cell sees it.

Every deployment is a shard map: a single deployment is one cell that owns every shard
and has no peers, so the same code serves one cell and many.

The map itself comes from a `ShardMapSource`: in a deployment of several cells, the signed
directory the deployment publishes (dal/directory_map.py, the same reader on AWS and in
`messenger local`); for one cell, or a map given in process (tests), a fixed one. What
shard moves changed since the publish is read from the cell's own table
(dal/shard_states.py) at most once per CACHE_SECONDS per container, so a move's step takes
effect in every container within that time (the move waits it out, logic/shard_move.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from messenger.config import CellSettings
from messenger.dal.shard_states import (
    NO_MOVES,
    MovedRange,
    RangeState,
    ShardStates,
    ShardStateSnapshot,
)
from messenger.errors import RateLimited, SideFenced, SidePromoting
from messenger.logic.clock import Clock
from messenger_protocol.cells import ShardMap, shard

# As logic/cell_view.py's: a move's step is seen everywhere within this.
CACHE_SECONDS = 2.0
# What a send to a user whose range is being moved is told to wait (RATE_LIMITED).
MOVING_RETRY_AFTER_MS = 2000


class UserMoved(SideFenced):
    """The user's range moved to another cell (docs/protocol.md §6 "Shard moves"): their
    handshake is refused 403, a frame answered MOVED and the connection closed."""


class UserMoving(SidePromoting):
    """The user's range is being moved away from this cell: a handshake (and so a
    registration) waits until it is over (the authorizer fails, clients retry)."""


def _refuse_while_fenced(user_id: str, moved: MovedRange | None) -> None:
    """RateLimited while the user's range is being copied away from this cell."""
    if moved is not None and moved.state is RangeState.FENCED:
        raise RateLimited(
            f"{user_id!r} is moving to another cell; try again",
            retry_after=MOVING_RETRY_AFTER_MS,
        )


class ShardMapSource(Protocol):
    """Where the cell's shard map comes from (the published directory, or a fixed map)."""

    def current(self) -> ShardMap: ...


class FixedShardMap:
    """A map given in process: a single cell's, or a test's."""

    def __init__(self, shard_map: ShardMap) -> None:
        self._map = shard_map

    def current(self) -> ShardMap:
        return self._map


class Cells:
    """This cell's view of the shard map, with the moves that involve it."""

    def __init__(
        self,
        settings: CellSettings,
        states: ShardStates | None = None,
        clock: Clock | None = None,
        cache_seconds: float = CACHE_SECONDS,
        shard_maps: ShardMapSource | None = None,
    ) -> None:
        """`shard_maps`: where the map is read (None: the one `settings` gives)."""
        if shard_maps is None:
            if settings.shard_map is None:
                raise ValueError("a cell without a shard map of its own needs a source for it")
            shard_maps = FixedShardMap(settings.shard_map)
        self._settings = settings
        self._states = states
        self._clock = clock or Clock()
        self._cache_ms = int(cache_seconds * 1000)
        self._moves: ShardStateSnapshot = NO_MOVES
        self._read_at_ms: int | None = None
        self._shard_maps = shard_maps
        # The peers of the map last seen (a new map, a new list).
        self._peers_of: tuple[ShardMap, tuple[str, ...]] | None = None

    @property
    def shard_map(self) -> ShardMap:
        """The map this cell serves by now, before the moves since it was published."""
        return self._shard_maps.current()

    @property
    def cell_id(self) -> str:
        return self._settings.cell_id

    @property
    def peers(self) -> tuple[str, ...]:
        """The other cells that own shards in the map (none in a single cell). Who may call
        this cell's Relay is not this list: any cell whose relay record is in the
        directory (logic/relay_callers.py), whatever it owns."""
        shard_map = self.shard_map
        if self._peers_of is None or self._peers_of[0] is not shard_map:
            peers = tuple(cell for cell in shard_map.cells() if cell != self.cell_id)
            self._peers_of = (shard_map, peers)
        return self._peers_of[1]

    def _moves_now(self) -> ShardStateSnapshot:
        if self._states is None:
            return NO_MOVES
        now_ms = self._clock.now_ms()
        if self._read_at_ms is None or now_ms - self._read_at_ms >= self._cache_ms:
            self._moves = self._states.read()
            self._read_at_ms = now_ms
        return self._moves

    def forget(self) -> None:
        """Read the moves again at next use."""
        self._read_at_ms = None

    def _range_of(self, user_id: str) -> tuple[str, MovedRange | None]:
        """The user's home and the move that last changed their range here (None if
        none), from ONE read of the moves: a step seen between two reads must not split
        one decision (a home found elsewhere, then a write admitted here)."""
        moves = self._moves_now()
        shard_map = self.shard_map
        moved = moves.latest_for(shard(user_id, shard_map.shards)) if moves.ranges else None
        if moved is not None and moved.state in (RangeState.OUT, RangeState.HOME):
            return moved.peer, moved
        if moved is not None and moved.state is RangeState.IN:
            return self.cell_id, moved
        return shard_map.home_of(user_id), moved

    def home_of(self, user_id: str) -> str:
        """The user's home cell."""
        return self._range_of(user_id)[0]

    def is_home(self, user_id: str) -> bool:
        """Whether this cell is the user's home."""
        return self.home_of(user_id) == self.cell_id

    def is_moving(self, user_id: str) -> bool:
        """Whether the user's range is being copied away from this cell right now."""
        moved = self._range_of(user_id)[1]
        return moved is not None and moved.state is RangeState.FENCED

    def admit_writes_for(self, user_id: str) -> None:
        """RateLimited unless this cell is the user's home and their range is not being
        moved away: nothing is stored for them here while the copy runs (nor left behind
        by it), nor once the range has moved (a request that found them at home a moment
        before: what it would store here, the new home would never read). The sender
        tries again, and then reaches the new home."""
        home, moved = self._range_of(user_id)
        _refuse_while_fenced(user_id, moved)
        if home != self.cell_id:
            raise RateLimited(
                f"{user_id!r} has moved to another cell; try again",
                retry_after=MOVING_RETRY_AFTER_MS,
            )

    def admit_user(self, user_id: str) -> None:
        """Refuse a user of this cell's connection: UserMoved once their range moved away,
        RateLimited while it moves (their frames write, and the copy must see it all)."""
        home, moved = self._range_of(user_id)
        if home != self.cell_id:
            raise UserMoved(f"{user_id!r} moved to another cell: fetch the directory")
        _refuse_while_fenced(user_id, moved)

    def _moved(self, user_id: str, state: RangeState) -> str | None:
        moved = self._range_of(user_id)[1]
        return moved.peer if moved is not None and moved.state is state else None

    def moved_in_from(self, user_id: str) -> str | None:
        """The cell this user's range moved here from (which may forward for it), if any."""
        return self._moved(user_id, RangeState.IN)

    def moved_out_to(self, user_id: str) -> str | None:
        """The cell this user's range moved to from here (what arrives for them here is
        forwarded there), if any."""
        return self._moved(user_id, RangeState.OUT)

    def split(self, user_ids: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
        """This cell's users, and the others' grouped by home cell, each in their order."""
        here: list[str] = []
        elsewhere: dict[str, list[str]] = {}
        for user_id in user_ids:
            home = self.home_of(user_id)
            if home == self.cell_id:
                here.append(user_id)
            else:
                elsewhere.setdefault(home, []).append(user_id)
        return here, elsewhere
