"""DynamoDB request units of every call the functions make, by DynamoDB's sizing rules.

moto reports no real consumed capacity, so each call is metered from the items it
touches, read with a second client the functions do not use: a write costs 1 WRU per
KB of the item (the larger of before and after), plus the units of each index entry it
writes or removes (1 for an index of keys only; the whole item's for one projecting
ALL), the item's own units twice inside a transaction; a read costs 1 RRU per 4 KB (0.5
eventually consistent), every item of a batch rounded on its own, a Query's items summed
and rounded once. Units are kept by operation and, for the tables' own quotas, by table
(its logical name: Users, Queue, Limits).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from messenger.contract import TableSpec


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (S, N, B, BOOL, NULL, L, M, sets)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        return math.ceil(len(str(inner).lstrip("-").replace(".", "")) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):  # a set: the sum of its elements
        element = kind[0]
        return sum(attribute_size({element: member}) for member in inner)
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    raise ValueError(kind)


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


@dataclass
class Metered:
    """The units of the calls of one stretch of work, by operation."""

    wru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Of those write units, the ones of index entries.
    index_wru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    rru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)
    # The same units by (operation, table): DynamoDB's throughput quotas are per table.
    wru_at: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    rru_at: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))

    @property
    def total_wru(self) -> float:
        return sum(self.wru.values())

    @property
    def total_index_wru(self) -> float:
        return sum(self.index_wru.values())

    @property
    def total_rru(self) -> float:
        return sum(self.rru.values())

    def __iadd__(self, other: Metered) -> Metered:
        for mine, theirs in (
            (self.wru, other.wru),
            (self.index_wru, other.index_wru),
            (self.rru, other.rru),
        ):
            for operation, units in theirs.items():
                mine[operation] += units
        for mine_at, theirs_at in ((self.wru_at, other.wru_at), (self.rru_at, other.rru_at)):
            for key, units in theirs_at.items():
                mine_at[key] += units
        self.calls += other.calls
        return self

    def wru_of_table(self, table: str) -> float:
        return sum(units for (_, name), units in self.wru_at.items() if name == table)

    def rru_of_table(self, table: str) -> float:
        return sum(units for (_, name), units in self.rru_at.items() if name == table)


class CapacityMeter:
    """Hooked on the functions' DynamoDB client; `peek` reads items without being metered."""

    def __init__(self, peek: Any, tables: dict[str, TableSpec]) -> None:
        self._peek = peek
        self._tables = tables
        self._current = Metered()
        self._pending_update: dict[str, Any] | None = None

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    @contextmanager
    def measuring(self) -> Iterator[Metered]:
        self._current = Metered()
        measured = Metered()
        yield measured
        measured += self._current

    # --- sizing ---------------------------------------------------------------------

    def _stored(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._peek.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return item

    def _index_units(self, table: str, item: dict[str, Any] | None) -> int:
        """Units of writing (or removing) the index entries of an item."""
        if item is None:
            return 0
        spec = self._tables[table]
        return sum(
            write_units(item_size(item)) if index.projection == "ALL" else 1
            for index in (*spec.local_indexes, *spec.global_indexes)
            if index.partition_key in item and (index.sort_key is None or index.sort_key in item)
        )

    def _key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        spec = self._tables[table]
        return {name: item[name] for name in (spec.partition_key, spec.sort_key)}

    def _write(
        self, operation: str, table: str, key: dict[str, Any], after: dict[str, Any] | None
    ) -> float:
        """Units of writing `after` (None: deleting) where `key` is stored now."""
        before = self._stored(table, key)
        sizes = [item_size(i) for i in (before, after) if i is not None]
        base = write_units(max(sizes, default=0))
        entries = self._index_units(table, before) + self._index_units(table, after)
        self._current.index_wru[operation] += entries
        return base + entries

    # --- hooks ------------------------------------------------------------------------

    def _charge(self, operation: str, table: str, wru: float = 0, rru: float = 0) -> None:
        """Add units to the operation's count and to its table's (by logical name)."""
        logical = self._tables[table].logical_name
        self._current.wru[operation] += wru
        self._current.rru[operation] += rru
        if wru:
            self._current.wru_at[(operation, logical)] += wru
        if rru:
            self._current.rru_at[(operation, logical)] += rru

    def _before(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **kwargs: Any
    ) -> None:
        operation = model.name
        context["metered_request"] = params  # the after-call hook is not given them
        self._current.calls[operation] += 1
        if operation == "PutItem":
            table = params["TableName"]
            item = params["Item"]
            self._charge(
                operation, table, self._write(operation, table, self._key_of(table, item), item)
            )
        elif operation == "DeleteItem":
            table = params["TableName"]
            self._charge(operation, table, self._write(operation, table, params["Key"], None))
        elif operation == "UpdateItem":
            # The item after the update is not known yet: the units are taken after.
            self._pending_update = self._stored(params["TableName"], params["Key"])
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        key = self._key_of(table, item)
                    else:
                        item, key = None, request["DeleteRequest"]["Key"]
                    self._charge(operation, table, self._write(operation, table, key, item))
        elif operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                table = body["TableName"]
                if kind == "Put":
                    key, after = self._key_of(table, body["Item"]), body["Item"]
                else:
                    key, after = body["Key"], None
                before = self._stored(table, key)
                if kind == "Update":
                    after = before
                size = max((item_size(i) for i in (before, after) if i is not None), default=0)
                entries = self._index_units(table, before) + self._index_units(table, after)
                self._current.index_wru[operation] += entries
                self._charge(operation, table, 2 * write_units(size) + entries)
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                for key in request["Keys"]:
                    stored = self._stored(table, key)
                    size = item_size(stored) if stored else 0
                    self._charge(operation, table, rru=read_units(size, consistent))

    def _after(self, model: Any, parsed: Any, context: dict[str, Any], **kwargs: Any) -> None:
        operation = model.name
        params = context.get("metered_request", {})
        if operation == "UpdateItem":
            table = params["TableName"]
            before = self._pending_update
            after = self._stored(table, params["Key"])
            size = max((item_size(i) for i in (before, after) if i is not None), default=0)
            changed = self._index_units(table, before) != self._index_units(table, after)
            self._charge(operation, table, write_units(size) + (1 if changed else 0))
            self._current.index_wru[operation] += 1 if changed else 0
        elif operation in ("GetItem", "Query"):
            consistent = bool(params.get("ConsistentRead"))
            items = [parsed["Item"]] if parsed.get("Item") else parsed.get("Items", [])
            size = sum(item_size(item) for item in items)
            self._charge(operation, params["TableName"], rru=read_units(size, consistent))
