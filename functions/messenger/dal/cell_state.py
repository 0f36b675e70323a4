"""Which side of the cell is active (docs/protocol.md §7 Fencing), as this region's
replica of the Users table records it: the item of dal/cell_generation.py.

A switch writes the item in the side it promotes (`CellGeneration.bump`) and, as far as
that side can still be reached, in the side it demotes (`CellState.record_switch`), with
the same generation: replication carries it too, and whichever write replicates last
names the same side. Before any switch the item names no side: the primary is active.

The automated switch's arm lives beside it, ("CELL", "AUTOSWITCH"): a switch that fired
disarms it, so that a flapping alarm cannot switch back and forth; an operator re-arms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from messenger.dal.cell_generation import (
    ACTIVE,
    ACTIVE_FROM,
    EPOCH_PK,
    EPOCH_SK,
    GENERATION,
    SWITCHED_AT,
)
from messenger.dal.errors import ConditionFailed, dynamodb_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ARM_SK = "AUTOSWITCH"
ARMED = "armed"
DISARMED_AT = "disarmedAt"


@dataclass(frozen=True)
class ActiveSide:
    """What the replica says: the active side (None: no switch yet, so the primary), from
    when it takes writes (ms), and the generation the switch wrote."""

    side: str | None
    active_from_ms: int
    generation: int


class CellState:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, sk: str = EPOCH_SK) -> dict[str, dict[str, str]]:
        return {"pk": {"S": EPOCH_PK}, "sk": {"S": sk}}

    def read(self) -> ActiveSide:
        """The active side this replica knows. Strongly consistent: a fence must not
        read a value older than the one a switch wrote in this very region."""
        item = (
            self._client.get_item(TableName=self._table, Key=self._key(), ConsistentRead=True).get(
                "Item"
            )
            or {}
        )
        return ActiveSide(
            side=item[ACTIVE]["S"] if ACTIVE in item else None,
            active_from_ms=int(item[ACTIVE_FROM]["N"]) if ACTIVE_FROM in item else 0,
            generation=int(item[GENERATION]["N"]) if GENERATION in item else 0,
        )

    def record_switch(self, to: str, generation: int, active_from_ms: int, now_ms: int) -> bool:
        """Write into this (the demoted side's) replica that `to` is active from
        `active_from_ms` at `generation`; False if it already holds that generation or a
        later one (a switch run twice, or replication was first)."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(),
                    UpdateExpression=f"SET {GENERATION} = :gen, {ACTIVE} = :side, "
                    f"{SWITCHED_AT} = :now, {ACTIVE_FROM} = :from",
                    ConditionExpression=(
                        f"attribute_not_exists({GENERATION}) OR {GENERATION} < :gen"
                    ),
                    ExpressionAttributeValues={
                        ":gen": {"N": str(generation)},
                        ":side": {"S": to},
                        ":now": {"N": str(now_ms)},
                        ":from": {"N": str(active_from_ms)},
                    },
                )
        except ConditionFailed:
            return False
        return True

    def armed(self) -> bool:
        """Whether the automated switch may fire (armed until it fires once)."""
        item = self._client.get_item(
            TableName=self._table, Key=self._key(ARM_SK), ConsistentRead=True
        ).get("Item")
        return item is None or ARMED not in item or bool(item[ARMED]["BOOL"])

    def disarm(self, now_ms: int) -> bool:
        """Take the arm (the automated switch fires once); False if it was not armed."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(ARM_SK),
                    UpdateExpression=f"SET {ARMED} = :false, {DISARMED_AT} = :now",
                    ConditionExpression=f"attribute_not_exists({ARMED}) OR {ARMED} = :true",
                    ExpressionAttributeValues={
                        ":false": {"BOOL": False},
                        ":true": {"BOOL": True},
                        ":now": {"N": str(now_ms)},
                    },
                )
        except ConditionFailed:
            return False
        return True

    def arm(self) -> None:
        """The operator's: the automated switch may fire again."""
        self._client.update_item(
            TableName=self._table,
            Key=self._key(ARM_SK),
            UpdateExpression=f"SET {ARMED} = :true REMOVE {DISARMED_AT}",
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )
