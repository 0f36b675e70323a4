"""Which cell is a user's home (docs/protocol.md §6), as this cell sees it.

Every deployment is a shard map: a single deployment is one cell that owns every shard
and has no peers, so the same code serves one cell and many.

The configured map is the cell's deploy-time one; what shard moves changed since is read
from the cell's own table (dal/shard_states.py) at most once per CACHE_SECONDS per
container, so a move's step takes effect in every container within that time (the move
waits it out, logic/shard_move.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from messenger.config import CellSettings
from messenger.dal.shard_states import NO_MOVES, RangeState, ShardStates, ShardStateSnapshot
from messenger.errors import RateLimited, SideFenced, SidePromoting
from messenger.logic.clock import Clock
from messenger_protocol.cells import shard

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


class Cells:
    """This cell's view of the shard map, with the moves that involve it."""

    def __init__(
        self,
        settings: CellSettings,
        states: ShardStates | None = None,
        clock: Clock | None = None,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._settings = settings
        self._states = states
        self._clock = clock or Clock()
        self._cache_ms = int(cache_seconds * 1000)
        self._moves: ShardStateSnapshot = NO_MOVES
        self._read_at_ms: int | None = None

    @property
    def cell_id(self) -> str:
        return self._settings.cell_id

    @property
    def peers(self) -> tuple[str, ...]:
        """The other cells, whose Relays this cell may call (none in a single cell)."""
        return tuple(self._settings.peers)

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

    def home_of(self, user_id: str) -> str:
        """The user's home cell."""
        moves = self._moves_now()
        if moves.ranges:
            moved = moves.latest_for(shard(user_id, self._settings.shard_map.shards))
            if moved is not None and moved.state in (RangeState.OUT, RangeState.HOME):
                return moved.peer
            if moved is not None and moved.state is RangeState.IN:
                return self.cell_id
        return self._settings.shard_map.home_of(user_id)

    def is_home(self, user_id: str) -> bool:
        """Whether this cell is the user's home."""
        return self.home_of(user_id) == self.cell_id

    def is_moving(self, user_id: str) -> bool:
        """Whether the user's range is being copied away from this cell right now."""
        moves = self._moves_now()
        if not moves.ranges:
            return False
        moved = moves.latest_for(shard(user_id, self._settings.shard_map.shards))
        return moved is not None and moved.state is RangeState.FENCED

    def admit_writes_for(self, user_id: str) -> None:
        """RateLimited while the user's range is being moved away: nothing is stored for
        them here, so nothing is left behind by the copy (the sender tries again)."""
        if self.is_moving(user_id):
            raise RateLimited(
                f"{user_id!r} is moving to another cell; try again",
                retry_after=MOVING_RETRY_AFTER_MS,
            )

    def admit_user(self, user_id: str) -> None:
        """Refuse a user of this cell's connection: UserMoved once their range moved away,
        RateLimited while it moves (their frames write, and the copy must see it all)."""
        if not self.is_home(user_id):
            raise UserMoved(f"{user_id!r} moved to another cell: fetch the directory")
        self.admit_writes_for(user_id)

    def _moved(self, user_id: str, state: RangeState) -> str | None:
        moves = self._moves_now()
        if not moves.ranges:
            return None
        moved = moves.latest_for(shard(user_id, self._settings.shard_map.shards))
        return moved.peer if moved is not None and moved.state is state else None

    def moved_in_from(self, user_id: str) -> str | None:
        """The cell this user's range moved here from (which may forward for it), if any."""
        return self._moved(user_id, RangeState.IN)

    def moved_out_to(self, user_id: str) -> str | None:
        """The cell this user's range moved to from here (what arrives for them here is
        forwarded there), if any."""
        return self._moved(user_id, RangeState.OUT)

    def is_peer(self, cell: str) -> bool:
        """Whether `cell` is another cell of the map (one that may call this one's Relay)."""
        return cell in self._settings.peers

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
