"""Two changes to moto's DynamoDB that keep the local stack's speed from falling as its
tables grow, each keeping moto's answers exactly as they were. `install()` makes both.

**Queries read one partition.** moto answers a Query on a table's own key by sorting
every item of the table, then keeping those of the partition asked for: every `sync`,
`$connect` and `$disconnect` paid for the whole Users or Queue table. The partition's
items, sorted by sort key, are the same list.

**Transactions back up what they touch.** moto backs up every table a transaction
names by deep-copying it, once per action, before it applies the actions one by one (to
restore the tables if one fails). That cost grows with the table: at a thousand users
each registration copied the Users table twice and each `ack` copied the Queue table
once per id. Here moto's own transaction code runs unchanged but for its backup: the
items the transaction touches are copied before it runs (or noted absent), the tables
are not, and a failed transaction puts exactly those items back. The tables end as
moto's rollback leaves them; DynamoDB guarantees the same, all actions or none.

Requests reach moto one at a time (`aws.MotoGate`), so both changes can swap a method
for the length of one call without another request seeing it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

TransactWrite = Callable[[DynamoDBBackend, list[dict[str, Any]]], None]
Touched = list[tuple[Table, DynamoType, DynamoType | None, Item | None]]

_ORIGINAL: TransactWrite = DynamoDBBackend.transact_write_items
_ORIGINAL_QUERY = Table.query
_INDEX_NAME_POSITION = 6  # after hash_key: range_comparison ... projection_expressions


def install() -> None:
    """Change every DynamoDB backend in this process (idempotent)."""
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    """moto's Query, seeing only the partition asked for when it reads the table's own key."""
    positional_index = args[_INDEX_NAME_POSITION] if len(args) > _INDEX_NAME_POSITION else None
    index_name = kwargs.get("index_name", positional_index)
    if index_name or hash_key is None or self.range_key_attr is None:
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    partition = list(self.items.get(hash_key, {}).values())
    # all_items() sorts by (hash key, sort key): within one partition, by sort key.
    self.all_items = lambda: sorted(partition, key=lambda item: item.range_key)  # type: ignore[method-assign]
    try:
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    touched = _touched_items(self, transact_items)
    with _tables_not_copied():
        try:
            _ORIGINAL(self, transact_items)
        except Exception:
            _restore(touched)
            raise


def _touched_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Touched:
    """Each item an action names, as it is now (a deep copy), or None where there is none."""
    touched: Touched = []
    for action in transact_items:
        for operation in action.values():
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Key") or _key_of(table, operation.get("Item") or {})
            try:
                hash_key, range_key = backend.get_keys_value(table, key)
                current = table.get_item(hash_key, range_key)
            except Exception:  # an invalid key: moto refuses the transaction, nothing to keep
                continue
            touched.append((table, hash_key, range_key, copy.deepcopy(current)))
    return touched


def _key_of(table: Table, item: dict[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr, table.range_key_attr]
    return {name: item[name] for name in names if name is not None and name in item}


def _restore(touched: Touched) -> None:
    """Put every touched item back as it was; last first, so the oldest state wins."""
    for table, hash_key, range_key, before in reversed(touched):
        table.delete_item(hash_key, range_key)
        if before is None:
            continue
        if range_key is not None:
            table.items[hash_key][range_key] = before
        else:
            table.items[hash_key] = before  # type: ignore[assignment]


@contextmanager
def _tables_not_copied() -> Iterator[None]:
    """moto's own backup, `copy.deepcopy(table)`, hands back the table itself meanwhile."""
    Table.__deepcopy__ = _same_table  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del Table.__deepcopy__  # type: ignore[attr-defined]


def _same_table(table: Table, memo: dict[int, Any]) -> Table:
    return table
