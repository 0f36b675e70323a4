"""What this cell knows of shard moves that involve it (docs/protocol.md §6 "Shard moves"):
one item in its Users table, ("CELL", "SHARDS"), read by every function through
logic/cells.py and written only by a move's steps (logic/shard_move.py).

The item holds `ranges`, a list in the order they were written (the last one that holds a
shard wins), each a map `{lo, hi, state, peer, move}`:

- `fenced` (at the old home, while the range is copied): the old home still serves the
  range's users, but stores nothing for them (RATE_LIMITED with `retryAfter`) and
  registers none of them;
- `out` (at the old home, once the move switched): `peer` is the range's home now; the old
  home refuses its users (403, `MOVED`) and forwards what arrives for them;
- `in` (at the new home, once the move switched): this cell is the range's home, whatever
  its configured shard map says, and `peer` (the old home) may forward to it;
- `home` (at every other cell, once the move switched): `peer` is the range's home now,
  so this cell sends there directly and takes calls from there for the range's users.

The map the cell read from the signed directory (dal/directory_map.py, kept a minute)
may lag a move's publish: this item is what changed since, so that a move needs no
deploy of any cell and takes effect within 2 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS_PK = "CELL"
SHARDS_SK = "SHARDS"
RANGES = "ranges"
REVISION = "revision"


class RangeState(StrEnum):
    FENCED = "fenced"
    OUT = "out"
    IN = "in"
    HOME = "home"


@dataclass(frozen=True)
class MovedRange:
    """A range of shards a move changed at this cell."""

    lo: int
    hi: int
    state: RangeState
    peer: str  # the other cell of the move: the new home (fenced, out) or the old (in)
    move: str  # the move's id

    def holds(self, shard: int) -> bool:
        return self.lo <= shard <= self.hi

    def overlaps(self, lo: int, hi: int) -> bool:
        return self.lo <= hi and lo <= self.hi

    def to_item(self) -> dict[str, Any]:
        return {
            "M": {
                "lo": {"N": str(self.lo)},
                "hi": {"N": str(self.hi)},
                "state": {"S": self.state.value},
                "peer": {"S": self.peer},
                "move": {"S": self.move},
            }
        }

    @classmethod
    def from_item(cls, value: dict[str, Any]) -> MovedRange:
        entry = value["M"]
        return cls(
            lo=int(entry["lo"]["N"]),
            hi=int(entry["hi"]["N"]),
            state=RangeState(entry["state"]["S"]),
            peer=entry["peer"]["S"],
            move=entry["move"]["S"],
        )


@dataclass(frozen=True)
class ShardStateSnapshot:
    """The ranges as read, and the revision that read them (for a conditional write)."""

    ranges: tuple[MovedRange, ...]
    revision: int

    def latest_for(self, shard: int) -> MovedRange | None:
        """The last-written range that holds `shard` (a later move overrides an earlier)."""
        for entry in reversed(self.ranges):
            if entry.holds(shard):
                return entry
        return None


NO_MOVES = ShardStateSnapshot((), 0)


class ShardStates:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self) -> dict[str, dict[str, str]]:
        return {"pk": {"S": SHARDS_PK}, "sk": {"S": SHARDS_SK}}

    def read(self) -> ShardStateSnapshot:
        """Strongly consistent: a move's step reads what it wrote itself a moment ago."""
        item = self._client.get_item(
            TableName=self._table, Key=self._key(), ConsistentRead=True
        ).get("Item")
        if not item:
            return NO_MOVES
        return ShardStateSnapshot(
            ranges=tuple(MovedRange.from_item(value) for value in item[RANGES]["L"]),
            revision=int(item[REVISION]["N"]),
        )

    def put_range(self, entry: MovedRange) -> bool:
        """Record `entry`, replacing the entry of the same move and range if any. False if it
        is there already (a step run again). Optimistic: read, then write on the revision
        read; a concurrent writer makes it read again."""
        while True:
            current = self.read()
            if entry in current.ranges:
                return False
            kept = [
                other
                for other in current.ranges
                if not (other.move == entry.move and (other.lo, other.hi) == (entry.lo, entry.hi))
            ]
            if self._write([*kept, entry], current.revision):
                return True

    def remove_move(self, move: str) -> bool:
        """Forget every range of this move (an aborted move's rollback). False if there was
        none (a step run again). Optimistic, like `put_range`."""
        while True:
            current = self.read()
            kept = [entry for entry in current.ranges if entry.move != move]
            if len(kept) == len(current.ranges):
                return False
            if self._write(kept, current.revision):
                return True

    def _write(self, ranges: list[MovedRange], revision: int) -> bool:
        condition = (
            f"attribute_not_exists({REVISION})" if revision == 0 else f"{REVISION} = :revision"
        )
        values: dict[str, Any] = {
            ":ranges": {"L": [entry.to_item() for entry in ranges]},
            ":next": {"N": str(revision + 1)},
        }
        if revision:
            values[":revision"] = {"N": str(revision)}
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(),
                    UpdateExpression=f"SET {RANGES} = :ranges, {REVISION} = :next",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
        except ConditionFailed:
            return False
        return True
