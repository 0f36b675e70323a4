"""Moving a range of shards from one cell to another while both serve (docs/protocol.md §6
"Shard moves"; the runbook is docs/scale.md "Shard moves").

A move is a list of steps, each idempotent, run in order by `ShardMove.run`. The move's
record (dal/moves.py, in the old home's Users table) says which step is next and, inside
a copying or deleting step, which page of the Scan is next; it is written after every
page and every step. A runner stopped anywhere (a crash, a timeout) is simply run again:
a page done twice stores nothing twice (puts are conditional on the key, and items keep
the keys they had) and deletes nothing that was not the range's.

    fence          the old home stores nothing more for the range's users, nor registers
                   any (its containers see it within CACHE_SECONDS: the step waits that
                   out); sends to them are RATE_LIMITED with retryAfter, never lost
    copy-users     (nothing is written at the new home before these, nor of the range at
                   the old one after the fence: a page copied twice is the same writes)
                   profiles (minus the old home's connections), keys, devices, contacts,
                   blocks, push endpoints, settings, spent nonces, subscriptions to them
    copy-queue     every queued message and receipt, keeping its key and seq (so order)
    copy-limits    queue-cap counters (rate-limit buckets start afresh, §6)
    switch-in      the new home serves the range (and accepts what the old one forwards);
                   claimed in the record first: no abort from here on
    switch-peers   every other cell follows the new map for the range (sends there, takes
                   the new home's calls for its users), while the range's users are still
                   fenced at the old home: so no cell is ever asked by the new home about
                   a user it still places at the old one
    switch-out     the old home refuses the range's users (403, MOVED) and forwards what
                   still arrives for them (a call that read the old view), until every
                   cell follows the new map
    publish        the directory: the new shard map, version + 1 (the directory's own
                   publisher, which signs it)
    close          the range's connections at the old home get MOVED and close (1012)
    clean-*        the range's items are deleted at the old home

A move that has not switched in yet can be aborted (`ShardMove.abort`): its record turns
to the rollback, UNDO_STEPS, which its runner runs like any steps, resumably:

    abort-wait     a runner in flight when the abort came ends its step first (its next
                   record write fails): the longest a step takes
    undo-in        the new home forgets the range (nothing, since switch-in claims first:
                   kept for a rollback a runner of the former order recorded)
    undo-*         the copies of the old home's items of the range are deleted at the
                   new home (by key; a copy never written deletes nothing)
    unfence        the old home forgets the range's fence: it serves and stores as before

Until switch-in the new home has stored nothing of the range (it does not serve it, the
old home neither refuses its users nor forwards to it, and no peer sends there), so the old
home still holds everything. From switch-in on it may not (what the new home's own users
sent the range's, then what the peers sent, what was forwarded, what moved users did at
the new home): an abort is refused there, and the way back is to finish the move and move
the range back. switch-in claims its step in the record before it switches, so an abort
and a switch never both happen (undo-in is kept for a rollback recorded before the claim).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from messenger.dal.moves import (
    ABORTED,
    ABORTING,
    DONE,
    MoveConflict,
    MoveRecord,
    MoveRecords,
)
from messenger.dal.range_items import (
    PROFILE_SK,
    Page,
    RangeItems,
    ShardSpan,
    TableRole,
    moved_copy,
)
from messenger.dal.shard_states import MovedRange, RangeState, ShardStates
from messenger.errors import ConnectionGone
from messenger.logic.cells import CACHE_SECONDS
from messenger.logic.clock import Clock
from messenger.transport.connections import Connections
from messenger_protocol.cells import ShardMap
from messenger_protocol.frames import ErrorFrame
from messenger_protocol.names import ErrorCode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# How long a step that changed what cells serve waits before the next one: until every
# container of both cells must have read the change (logic/cells.py), plus a margin.
SETTLE_SECONDS = CACHE_SECONDS + 1.0


class MoveRefused(ValueError):
    """A move that cannot start (400): the range is not the old home's, or is invalid."""


class MoveBusy(Exception):
    """A move that overlaps one already running (409)."""


class MoveSwitched(Exception):
    """An abort of a move past its switch (409): the new home may hold what the old one
    does not; the way back is to finish the move, then move the range back."""


class DirectoryPublisher(Protocol):
    """The deployment's directory (functions/messenger_directory), as a move needs it."""

    def current_map(self) -> ShardMap:
        """The shard map of the last published directory."""
        ...

    def publish(self, shard_map: ShardMap) -> int:
        """Publish the directory with this map (version + 1, signed by the publisher);
        the version published. Publishing the map already published changes nothing and
        answers its version."""
        ...


class MoveObserver(Protocol):
    """Told of each step run (metrics on AWS: messenger.handlers.mover)."""

    def step_done(self, before: MoveRecord, after: MoveRecord, seconds: float) -> None: ...

    def step_failed(self, record: MoveRecord, error: Exception) -> None: ...


class _Unobserved:
    def step_done(self, before: MoveRecord, after: MoveRecord, seconds: float) -> None:
        pass

    def step_failed(self, record: MoveRecord, error: Exception) -> None:
        pass


class ConnectionCloser(Protocol):
    """The old home's API: tell each connection MOVED, then close it (1012)."""

    def close_moved(self, connection_ids: Sequence[str]) -> None: ...


class MovedConnections:
    """A cell's connections of moved users, through its @connections API: `error` MOVED,
    then closed (as a fenced side closes them, docs/protocol.md §7: 1012)."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    def close_moved(self, connection_ids: Sequence[str]) -> None:
        frame = ErrorFrame(
            code=ErrorCode.MOVED,
            message="this user moved to another cell: fetch the directory",
            ref=None,
        )
        for connection_id in connection_ids:
            try:
                self._connections.post(connection_id, frame)
                self._connections.close(connection_id)
            except ConnectionGone:
                continue


@dataclass(frozen=True)
class CellTables:
    """One cell's tables, as a move reads and writes them."""

    cell_id: str
    users: RangeItems
    queue: RangeItems
    limits: RangeItems
    shard_states: ShardStates
    moves: MoveRecords

    @classmethod
    def of(
        cls, cell_id: str, client: DynamoDBClient, users: str, queue: str, limits: str
    ) -> CellTables:
        """A cell's tables by name, through one DynamoDB client."""
        return cls(
            cell_id,
            RangeItems(client, users, TableRole.USERS),
            RangeItems(client, queue, TableRole.QUEUE),
            RangeItems(client, limits, TableRole.LIMITS),
            ShardStates(client, users),
            MoveRecords(client, users),
        )

    def table(self, role: TableRole) -> RangeItems:
        return {TableRole.USERS: self.users, TableRole.QUEUE: self.queue}.get(role, self.limits)


@dataclass(frozen=True)
class MoveResult:
    record: MoveRecord
    seconds: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "users": self.record.users,
            "items": self.record.items,
            "seconds": round(self.seconds, 3),
            "version": self.record.version,
            "move": self.record.move_id,
        }


STEPS = (
    "fence",
    "copy-users",
    "copy-queue",
    "copy-limits",
    "switch-in",
    "switch-peers",
    "switch-out",
    "publish",
    "close",
    "clean-users",
    "clean-queue",
    "clean-limits",
)
FINISHED = "finished"
# Where an abort can still roll a move back: before the new home switches the range in.
ABORTABLE = STEPS[: STEPS.index("switch-in") + 1]
UNDO_STEPS = ("abort-wait", "undo-in", "undo-users", "undo-queue", "undo-limits", "unfence")
# The longest a step runs (a page of the copy, throttled and retried; the Mover stops
# starting steps this long before its end): what an abort waits out first.
STEP_LONGEST_SECONDS = 120.0
# switch-in's claim, written in the record before the new home switches in.
SWITCHING_IN = {"switching": "in"}


class ShardMove:
    """Runs moves between the cells it is given the tables of."""

    def __init__(
        self,
        cells: Mapping[str, CellTables],
        publisher: DirectoryPublisher,
        closers: Mapping[str, ConnectionCloser],
        clock: Clock,
        wait: Callable[[float], None] = time.sleep,
        settle_seconds: float = SETTLE_SECONDS,
        observer: MoveObserver | None = None,
        step_longest_seconds: float = STEP_LONGEST_SECONDS,
    ) -> None:
        self._step_longest = step_longest_seconds
        self._cells = cells
        self._observer = observer or _Unobserved()
        self._publisher = publisher
        self._closers = closers
        self._clock = clock
        self._wait = wait
        self._settle = settle_seconds
        # Tests stop a run here, to show that a run from any point finishes the move.
        self.after_step: Callable[[MoveRecord], None] = lambda record: None

    # --- starting -----------------------------------------------------------------------

    def start(self, source: str, target: str, lo: int, hi: int) -> MoveRecord:
        """Record a new move (nothing else changes): MoveRefused if the range is not the
        old home's by the directory, MoveBusy if it overlaps a move still running."""
        if source == target:
            raise MoveRefused("from and to are the same cell")
        for cell in (source, target):
            if cell not in self._cells:
                raise MoveRefused(f"no cell {cell!r}")
        shard_map = self._publisher.current_map()
        if not (type(lo) is int and type(hi) is int and 0 <= lo <= hi < shard_map.shards):
            raise MoveRefused(f"lo and hi must be shards with 0 <= lo <= hi < {shard_map.shards}")
        for cell in (source, target):
            for running in self._cells[cell].moves.running():
                if running.overlaps(lo, hi):
                    raise MoveBusy(
                        f"shards {lo}-{hi} overlap move {running.move_id} "
                        f"({running.lo}-{running.hi}, {running.source} -> {running.target}, "
                        f"at {running.step})"
                    )
        if not shard_map.owns(source, lo, hi):
            raise MoveRefused(f"{source} does not own every shard of {lo}-{hi}")
        now_ms = self._clock.now_ms()
        record = MoveRecord(
            move_id=f"{now_ms}-{uuid.uuid4().hex[:8]}",
            source=source,
            target=target,
            lo=lo,
            hi=hi,
            shards=shard_map.shards,
            step=STEPS[0],
            started_at_ms=now_ms,
            updated_at_ms=now_ms,
        )
        self._cells[source].moves.create(record)
        return record

    # --- aborting -----------------------------------------------------------------------

    def abort(self, source: str, move_id: str) -> MoveRecord:
        """Turn a move into its rollback (UNDO_STEPS), which its runner then runs: nothing
        is undone here. MoveRefused if there is no such move, MoveSwitched if it is past
        its switch (or done). Aborting a move being rolled back answers its record."""
        moves = self._cells[source].moves if source in self._cells else None
        while True:
            record = moves.get(move_id) if moves is not None else None
            if moves is None or record is None:
                raise MoveRefused(f"no move {move_id} at {source}")
            if record.status in (ABORTING, ABORTED):
                return record
            switching = record.step == "switch-in" and record.cursor is not None
            if record.status == DONE or record.step not in ABORTABLE or switching:
                raise MoveSwitched(
                    f"move {move_id} is past its switch (step {record.step}, "
                    f"{record.status}): {record.target} may hold what {record.source} does "
                    f"not; finish it (resume), then move shards {record.lo}-{record.hi} "
                    f"from {record.target} back to {record.source}"
                )
            with contextlib.suppress(MoveConflict):  # a runner got there first: look again
                return moves.advance(
                    record,
                    step=UNDO_STEPS[0],
                    status=ABORTING,
                    cursor=None,
                    error=None,
                    updated_at_ms=self._now(record),
                )

    # --- running ------------------------------------------------------------------------

    def run(self, source: str, move_id: str) -> MoveResult:
        """Run a move's remaining steps; run again after any failure to resume it."""
        record = self.run_while(source, move_id, lambda: True)
        return MoveResult(record, (record.updated_at_ms - record.started_at_ms) / 1000)

    def run_while(self, source: str, move_id: str, go_on: Callable[[], bool]) -> MoveRecord:
        """Run a move's steps (each step, or one page of it) while `go_on()` says so, then
        answer where it stands: a runner with a deadline (the Mover function on AWS) is
        simply run again until the record's step is FINISHED."""
        record = self._cells[source].moves.get(move_id) if source in self._cells else None
        if record is None:
            raise MoveRefused(f"no move {move_id} at {source}")
        while record.step != FINISHED and go_on():
            started = time.monotonic()
            try:
                done = self._step(record)
            except MoveConflict:
                raise
            except Exception as error:
                self._note_failure(record, error)
                self._observer.step_failed(record, error)
                raise
            self._observer.step_done(record, done, time.monotonic() - started)
            record = done
            self.after_step(record)
        return record

    def status(self, cell: str) -> list[MoveRecord]:
        return self._cells[cell].moves.all()

    def _note_failure(self, record: MoveRecord, error: Exception) -> None:
        stored = self._cells[record.source].moves.get(record.move_id)
        if stored is not None:
            with contextlib.suppress(MoveConflict):
                self._cells[record.source].moves.advance(
                    stored,
                    error=f"{type(error).__name__}: {error}",
                    updated_at_ms=self._now(stored),
                )

    def _now(self, record: MoveRecord) -> int:
        """Now, but never the same as the record's own time (its write condition)."""
        return max(self._clock.now_ms(), record.updated_at_ms + 1)

    def _next(self, record: MoveRecord, **changes: Any) -> MoveRecord:
        """The step done: the move goes to the next one (of its rollback, if aborted)."""
        steps = UNDO_STEPS if record.status == ABORTING else STEPS
        following = steps.index(record.step) + 1
        step = steps[following] if following < len(steps) else FINISHED
        if step == FINISHED:
            changes["status"] = ABORTED if record.status == ABORTING else DONE
        return self._cells[record.source].moves.advance(
            record, step=step, cursor=None, error=None, updated_at_ms=self._now(record), **changes
        )

    def _step(self, record: MoveRecord) -> MoveRecord:
        source, target = self._cells[record.source], self._cells[record.target]
        step = record.step
        if step == "fence":
            source.shard_states.put_range(self._range(record, RangeState.FENCED, record.target))
            self._wait(self._settle)
            return self._next(record)
        if step.startswith("copy-"):
            return self._copy(record, TableRole(step.removeprefix("copy-")), source, target)
        if step == "switch-in":
            if record.cursor is None:
                # Claimed first: an abort after this is refused; one before it fails this
                # write (MoveConflict), and nothing switches.
                record = source.moves.advance(
                    record, cursor=SWITCHING_IN, updated_at_ms=self._now(record)
                )
            target.shard_states.put_range(self._range(record, RangeState.IN, record.source))
            self._wait(self._settle)
            return self._next(record)
        if step == "switch-peers":
            for cell_id, cell in self._cells.items():
                if cell_id not in (record.source, record.target):
                    cell.shard_states.put_range(self._range(record, RangeState.HOME, record.target))
            self._wait(self._settle)
            return self._next(record)
        if step == "switch-out":
            source.shard_states.put_range(self._range(record, RangeState.OUT, record.target))
            self._wait(self._settle)
            return self._next(record)
        if step == "publish":
            moved = self._publisher.current_map().reassigned(record.lo, record.hi, record.target)
            return self._next(record, version=self._publisher.publish(moved))
        if step == "close":
            return self._close(record, source)
        if step.startswith("clean-"):
            return self._clean(record, TableRole(step.removeprefix("clean-")), source)
        return self._undo_step(record, source, target)

    def _undo_step(self, record: MoveRecord, source: CellTables, target: CellTables) -> MoveRecord:
        step = record.step
        if step == "abort-wait":
            self._wait(self._step_longest)
            return self._next(record)
        if step == "undo-in":
            target.shard_states.remove_move(record.move_id)
            self._wait(self._settle)
            return self._next(record)
        if step.startswith("undo-"):
            return self._uncopy(record, TableRole(step.removeprefix("undo-")), source, target)
        if step == "unfence":
            source.shard_states.remove_move(record.move_id)
            return self._next(record)
        raise RuntimeError(f"move {record.move_id}: unknown step {step!r}")

    def _range(self, record: MoveRecord, state: RangeState, peer: str) -> MovedRange:
        return MovedRange(record.lo, record.hi, state, peer, record.move_id)

    def _span(self, record: MoveRecord) -> ShardSpan:
        return ShardSpan(record.lo, record.hi, record.shards)

    def _copy(
        self, record: MoveRecord, role: TableRole, source: CellTables, target: CellTables
    ) -> MoveRecord:
        """One page of the old home's table into the new home; the record moves on to the
        next page (or step), with the page's counts: a page run again after a crash was
        not counted the first time (its record was not written), and is written the same."""
        page = source.table(role).page(self._span(record), record.cursor)
        copies = [moved_copy(role, item, record.source) for item in page.items]
        target.table(role).put_all([copy for copy in copies if copy is not None])
        users = sum(1 for item in page.items if item["sk"]["S"] == PROFILE_SK)
        users = users if role is TableRole.USERS else 0
        items = len(page.items) if role is TableRole.QUEUE else 0
        counts = {"users": record.users + users, "items": record.items + items}
        if page.next_start is None:
            return self._next(record, **counts)
        return self._cells[record.source].moves.advance(
            record, cursor=page.next_start, updated_at_ms=self._now(record), **counts
        )

    def _close(self, record: MoveRecord, source: CellTables) -> MoveRecord:
        """One page of the range's profiles at the old home: their connections there get
        MOVED and close, as the fencing of §7 closes a demoted side's."""
        page = source.users.page(self._span(record), record.cursor)
        connection_ids = [
            connection_id
            for item in page.items
            if item["sk"]["S"] == PROFILE_SK
            for connection_id in item.get("conns", {}).get("M", {})
        ]
        closer = self._closers.get(record.source)
        if connection_ids and closer is not None:
            closer.close_moved(connection_ids)
        return self._page_done(record, page)

    def _clean(self, record: MoveRecord, role: TableRole, source: CellTables) -> MoveRecord:
        """One page of the range's items deleted at the old home."""
        page = source.table(role).page(self._span(record), record.cursor)
        source.table(role).delete(page.items)
        return self._page_done(record, page)

    def _uncopy(
        self, record: MoveRecord, role: TableRole, source: CellTables, target: CellTables
    ) -> MoveRecord:
        """One page of the range's items at the old home (fenced: what the copy read), their
        copies deleted at the new home."""
        page = source.table(role).page(self._span(record), record.cursor)
        copies = [moved_copy(role, item, record.source) for item in page.items]
        target.table(role).delete([copy for copy in copies if copy is not None])
        return self._page_done(record, page)

    def _page_done(self, record: MoveRecord, page: Page) -> MoveRecord:
        """A page of a paged step done: on to the next page, or the next step."""
        if page.next_start is None:
            return self._next(record)
        return self._cells[record.source].moves.advance(
            record, cursor=page.next_start, updated_at_ms=self._now(record)
        )
