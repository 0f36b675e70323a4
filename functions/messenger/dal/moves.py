"""Shard moves, as durable records (docs/scale.md "Shard moves", logic/shard_move.py): one
item per move in the old home's Users table, ("MOVE", <moveId>), which says which step
the move is at and where inside it, so that a move stopped anywhere is run again from
there, by whoever runs it (the local stack, or the workflow on AWS).

Attributes: `from`, `to`, `lo`, `hi`, `shards`, `step` (the next step to run), `cursor`
(JSON: where the current step's Scan stands; absent at a step's start), `users`, `items`
(what the copy stored or found stored), `startedAt`, `updatedAt` (ms), `version` (the
directory published, once it is), `status` (running, done; aborting while an abort rolls
it back, then aborted), `error` (the last failure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MOVE_PK = "MOVE"
RUNNING = "running"
DONE = "done"
# An abort's rollback (logic/shard_move.py UNDO_STEPS) runs, then has run.
ABORTING = "aborting"
ABORTED = "aborted"
# Moves that still hold their range (no other move may overlap them).
UNDER_WAY = frozenset({RUNNING, ABORTING})


class MoveConflict(Exception):
    """Another runner changed the move first (or the move already exists)."""


@dataclass(frozen=True)
class MoveRecord:
    move_id: str
    source: str
    target: str
    lo: int
    hi: int
    shards: int
    step: str
    started_at_ms: int
    updated_at_ms: int
    cursor: dict[str, Any] | None = None
    users: int = 0
    items: int = 0
    version: int | None = None
    status: str = RUNNING
    error: str | None = None

    def overlaps(self, lo: int, hi: int) -> bool:
        return self.lo <= hi and lo <= self.hi

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": MOVE_PK},
            "sk": {"S": self.move_id},
            "from": {"S": self.source},
            "to": {"S": self.target},
            "lo": {"N": str(self.lo)},
            "hi": {"N": str(self.hi)},
            "shards": {"N": str(self.shards)},
            "step": {"S": self.step},
            "startedAt": {"N": str(self.started_at_ms)},
            "updatedAt": {"N": str(self.updated_at_ms)},
            "users": {"N": str(self.users)},
            "items": {"N": str(self.items)},
            "status": {"S": self.status},
        }
        if self.cursor is not None:
            item["cursor"] = {"S": json.dumps(self.cursor, sort_keys=True)}
        if self.version is not None:
            item["version"] = {"N": str(self.version)}
        if self.error is not None:
            item["error"] = {"S": self.error[:1000]}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MoveRecord:
        return cls(
            move_id=item["sk"]["S"],
            source=item["from"]["S"],
            target=item["to"]["S"],
            lo=int(item["lo"]["N"]),
            hi=int(item["hi"]["N"]),
            shards=int(item["shards"]["N"]),
            step=item["step"]["S"],
            started_at_ms=int(item["startedAt"]["N"]),
            updated_at_ms=int(item["updatedAt"]["N"]),
            cursor=json.loads(item["cursor"]["S"]) if "cursor" in item else None,
            users=int(item["users"]["N"]),
            items=int(item["items"]["N"]),
            version=int(item["version"]["N"]) if "version" in item else None,
            status=item["status"]["S"],
            error=item["error"]["S"] if "error" in item else None,
        )

    def to_wire(self) -> dict[str, Any]:
        """What the status command and the local endpoint show."""
        return {
            "move": self.move_id,
            "from": self.source,
            "to": self.target,
            "lo": self.lo,
            "hi": self.hi,
            "step": self.step,
            "status": self.status,
            "users": self.users,
            "items": self.items,
            "version": self.version,
            "startedAt": self.started_at_ms,
            "updatedAt": self.updated_at_ms,
            "error": self.error,
        }


class MoveRecords:
    """The moves whose old home is this cell (in its Users table)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, record: MoveRecord) -> None:
        """MoveConflict if a move of that id exists."""
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=record.to_item(),
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConditionFailed:
            raise MoveConflict(f"move {record.move_id} exists") from None

    def get(self, move_id: str) -> MoveRecord | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": MOVE_PK}, "sk": {"S": move_id}},
            ConsistentRead=True,
        ).get("Item")
        return MoveRecord.from_item(item) if item else None

    def all(self) -> list[MoveRecord]:
        """Every move recorded here (a Query of one partition: an operator's read)."""
        records: list[MoveRecord] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": MOVE_PK}},
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**request)
            records += [MoveRecord.from_item(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return records
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def running(self) -> list[MoveRecord]:
        """Moves under way: running, or being rolled back."""
        return [record for record in self.all() if record.status in UNDER_WAY]

    def advance(self, record: MoveRecord, **changes: Any) -> MoveRecord:
        """Record progress: written only if the stored move is still at `record`'s step and
        update time (MoveConflict otherwise: another runner got there first)."""
        updated = replace(record, **changes)
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=updated.to_item(),
                    ConditionExpression="step = :step AND updatedAt = :at",
                    ExpressionAttributeValues={
                        ":step": {"S": record.step},
                        ":at": {"N": str(record.updated_at_ms)},
                    },
                )
        except ConditionFailed:
            raise MoveConflict(f"move {record.move_id} changed meanwhile") from None
        return updated
