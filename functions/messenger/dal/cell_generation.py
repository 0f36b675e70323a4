"""The cell's failover generation (docs/protocol.md §7), one item in the Users table.

Item layout: ("CELL", "EPOCH") with `generation` (a number, absent = 0), `active` (the
side, "primary" or "standby", that the last switch made active), `switchedAt` (ms) and
`activeFrom` (ms: when the active side starts taking writes, dal/cell_state.py).
The item replicates like every other, so each region's replica knows the generation the
last switch wrote there. Only a switch writes it (`bump`); the functions only read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger.dal.errors import ConditionFailed, dynamodb_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EPOCH_PK = "CELL"
EPOCH_SK = "EPOCH"
GENERATION = "generation"
ACTIVE = "active"
SWITCHED_AT = "switchedAt"
ACTIVE_FROM = "activeFrom"


def _key() -> dict[str, dict[str, str]]:
    return {"pk": {"S": EPOCH_PK}, "sk": {"S": EPOCH_SK}}


class CellGeneration:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def read(self) -> int:
        """The generation this region's replica holds (0 before any switch).

        An eventually consistent read: a switch is written in this very region, seconds
        before anyone needs to see it, and the caller caches the answer anyway.
        """
        item = self._client.get_item(
            TableName=self._table, Key=_key(), ProjectionExpression=GENERATION
        ).get("Item")
        return int(item[GENERATION]["N"]) if item and GENERATION in item else 0

    def bump(self, side: str, now_ms: int, active_from_ms: int | None = None) -> int | None:
        """Make `side` active with the next generation, taking writes from `active_from_ms`
        (default: at once); the new generation, or None if `side` already is the active
        one here (the same switch run again bumps nothing)."""
        try:
            with dynamodb_errors():
                response = self._client.update_item(
                    TableName=self._table,
                    Key=_key(),
                    UpdateExpression=f"ADD {GENERATION} :one SET {ACTIVE} = :side, "
                    f"{SWITCHED_AT} = :now, {ACTIVE_FROM} = :from",
                    ConditionExpression=f"attribute_not_exists({ACTIVE}) OR {ACTIVE} <> :side",
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":side": {"S": side},
                        ":now": {"N": str(now_ms)},
                        ":from": {"N": str(now_ms if active_from_ms is None else active_from_ms)},
                    },
                    ReturnValues="UPDATED_NEW",
                )
        except ConditionFailed:
            return None
        return int(response["Attributes"][GENERATION]["N"])
