"""Changes to moto that keep the local stack (and the tests' harness) fast, the first two
as its tables grow, each keeping moto's answers exactly as they were. `install()` makes
them all.

**Queries sort what they found, not the table.** moto answers every Query by sorting
every item of the table by its key (comparing moto's typed values, the slow part), then
keeping the matching ones: every `sync`, `$connect` and `$disconnect` paid for the whole
Users table, more with each user. Here a Query on the table's own key starts from its
partition, and a Query on an index filters the items as they are and sorts only the
matches by the table's key before moto sorts them by the index's: the same items, in
the same order, as moto's own answer. Each sort compares key values computed once per
item (moto's typed values compute both sides at every comparison), and moto walks only
the stretch of the sorted items that the sort key condition selects, with one item on
either side of it: moto weighs every item it walks against the page's limits, and those
two are the only ones outside the stretch that can change its answer (`_walked`).
`Item.project` (an index's keys, a `ProjectionExpression` of top-level names) copies the
attributes it keeps rather than writing the whole item out as JSON and back per name.
tests/e2e/test_embedded_moto_speed_queries.py holds every one of these to moto's answers.

**Transactions back up what they touch.** moto backs up every table a transaction
names by deep-copying it, once per action, before it applies the actions one by one (to
restore the tables if one fails). That cost grows with the table: at a thousand users
each registration copied the Users table twice and each `ack` copied the Queue table
once per id. Here moto's own transaction code runs unchanged but for its backup: the
items the transaction touches are copied before it runs (or noted absent), the tables
are not, and a failed transaction puts exactly those items back. The tables end as
moto's rollback leaves them; DynamoDB guarantees the same, all actions or none.

**Attribute values are written as they are.** moto writes every answer through its
generic serializer, which looks each member of each structure up under half a dozen
aliases: an `AttributeValue` ({"S": "x"}) costs ten look-ups of its ten possible
members, so a Query of 250 queued messages spends most of its time there. Here an
attribute value that moto holds as a plain dict of one type tag (S, N, BOOL, NULL, SS,
NS, or M and L of such) is written as that dict, which is what moto's serializer makes
of it; any other (binary values, which it base64-encodes) still goes through moto's.

**A response class's methods are listed once.** moto lists the methods of the class that
answers a request (with `inspect.getmembers`) on every request, to find the action's;
here once per class.

The changes apply only to requests let in by `aws.MotoGate` (or by the harness's lock,
`harness.serialize_moto`), which serves them one at a time: so they can set attributes
on a table for the length of one call without another request seeing them. Anything
else in the process using moto (`mock_aws` in a test, on any thread) gets moto unchanged.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from moto.core import responses as moto_responses
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

TransactWrite = Callable[[DynamoDBBackend, list[dict[str, Any]]], None]
Touched = list[tuple[Table, DynamoType, DynamoType | None, Item | None]]

_ORIGINAL: TransactWrite = DynamoDBBackend.transact_write_items
_ORIGINAL_QUERY = Table.query
_ORIGINAL_PROJECT = Item.project
_INDEX_NAME_POSITION = 6  # after hash_key: range_comparison ... projection_expressions
_ORIGINAL_STRUCTURE = BaseJSONSerializer._serialize_type_structure
_ORIGINAL_METHOD_NAMES = moto_responses.method_names_from_class
_method_names: dict[type, list[str]] = {}


_serialized = threading.local()


def install() -> None:
    """Put the changes in place for the requests let in by the gate (idempotent).

    A wrapper put around the transaction method since (replication's capture) stays.
    """
    if DynamoDBBackend.transact_write_items is _ORIGINAL:
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Item.project = _project  # type: ignore[method-assign]
    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]
    moto_responses.method_names_from_class = _method_names_of  # type: ignore[assignment]


def mark_serialized(active: bool) -> None:
    """Whether the calling thread is, for now, the only one in moto (the gate says so)."""
    _serialized.active = active


def _applies() -> bool:
    return bool(getattr(_serialized, "active", False))


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    """moto's Query, over the partition asked for, or over the unsorted items."""
    if not _applies():
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    positional_index = args[_INDEX_NAME_POSITION] if len(args) > _INDEX_NAME_POSITION else None
    index_name = kwargs.get("index_name", positional_index)
    if not index_name and hash_key is not None and self.range_key_attr is not None:
        # One partition: its items sorted by (hash key, sort key) are sorted by sort key,
        # and that is how moto orders a Query on the table's key anyway. Sorted here on
        # each key's value, computed once per item (moto's sort, which compares typed
        # values computing both each time, then finds them in order); and only the
        # stretch moto walks to answer (`_walked`).
        partition = list(self.items.get(hash_key, {}).values())
        partition.sort(key=_range_order)
        candidates = _walked(partition, self.range_key_attr, args, kwargs)
    else:
        candidates = _every_item(self)
    self.all_items = lambda: candidates  # type: ignore[method-assign]
    # moto sorts an index's matches by the index key; the table's order breaks ties.
    index_range = _index_range_attr(self, index_name) if index_name else None

    def sorted_items(
        hash_attrs: list[str], range_attrs: list[str | None], items: list[Item]
    ) -> Any:
        # The index's items of the hash key asked for, in moto's order; of those, the
        # stretch moto walks (as for a partition above).
        ordered = _sorted_items(self, hash_attrs, range_attrs, items)
        return _walked(ordered, index_range, args, kwargs) if index_range else ordered

    self.sorted_items = sorted_items  # type: ignore[method-assign,assignment]
    try:
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items
        del self.sorted_items


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """moto's `Item.project` where every path is one top-level name of a string or number
    (an index's keys, `ProjectionExpression="a, b"`): those attributes, as moto's answer
    has them, without writing the whole item out as JSON and reading it back once per
    name. Any other projection is moto's."""
    if not _applies():
        return _ORIGINAL_PROJECT(self, projection_expressions)
    attrs: dict[str, dict[str, str]] = {}
    for path in projection_expressions:
        if len(path) != 1 or "[" in path[0]:
            return _ORIGINAL_PROJECT(self, projection_expressions)
        [name] = path
        value = self.attrs.get(name)
        if value is None or name in attrs:
            continue
        if value.type == "S" and type(value.value) is str:
            attrs[name] = {"S": value.value}
        elif value.type == "N" and type(value.value) is str:
            # moto's round trip through a Decimal writes the number as boto3 does
            attrs[name] = {"N": str(DYNAMODB_CONTEXT.create_decimal(value.value))}
        else:
            return _ORIGINAL_PROJECT(self, projection_expressions)
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


def _every_item(table: Table) -> list[Item]:
    if table.range_key_attr:
        return [item for partition in table.items.values() for item in partition.values()]
    return list(table.items.values())  # type: ignore[arg-type]


_RANGE_COMPARISON_POSITION = 0  # after hash_key
_RANGE_OBJECTS_POSITION = 1


def _walked(
    partition: list[Item], range_attr: str, args: Any, kwargs: dict[str, Any]
) -> list[Item]:
    """Of a partition in sort key order, what moto's Query walks to answer as it does.

    moto walks the whole sorted partition, checking the sort key condition on each item,
    and weighs every item it walks past against the page's limits (the item count, 1 MB),
    matching or not. A sort key condition (=, <, <=, >, >=, BETWEEN, begins_with) matches
    one unbroken stretch of the sorted partition; before it no limit can be reached (no
    item is kept yet, none is 1 MB), and past it the first item is the last one moto
    weighs (a page full there ends with a LastEvaluatedKey; then the rest match nothing).
    So the stretch, with its neighbour on either side, gets moto's very answer."""

    def argument(name: str, position: int) -> Any:
        return args[position] if len(args) > position else kwargs.get(name)

    comparison = argument("range_comparison", _RANGE_COMPARISON_POSITION)
    if not comparison:
        return partition
    objects = argument("range_objs", _RANGE_OBJECTS_POSITION)
    conditions = kwargs.get("range_key_conditions")
    attr = conditions[-1][0] if conditions else range_attr
    values = [item.attrs[attr].cast_value for item in partition]
    bounds = [obj.cast_value for obj in objects]
    try:
        stretch = _stretch(values, comparison, bounds)
    except TypeError:  # values of another type than the bounds': as moto finds them
        stretch = None
    if stretch is None:  # a comparison not handled here: the positions, one by one
        matching = [
            position
            for position, item in enumerate(partition)
            if item.attrs[attr].compare(comparison, objects)
        ]
        if matching and matching[-1] - matching[0] + 1 != len(matching):
            return partition
        stretch = (matching[0], matching[-1] + 1) if matching else (0, 0)
    first, end = stretch
    if first >= end:
        return []  # nothing matches: moto's answer is empty, and reaches no limit
    return partition[max(first - 1, 0) : end + 1]


def _stretch(values: list[Any], comparison: str, bounds: list[Any]) -> tuple[int, int] | None:
    """[first, end) of the sorted `values` that meet the comparison (as moto's comparison
    functions read it), found by bisection; None for a comparison not handled here."""
    count = len(values)
    if comparison in ("EQ", "="):
        return bisect.bisect_left(values, bounds[0]), bisect.bisect_right(values, bounds[0])
    if comparison in ("LT", "<"):
        return 0, bisect.bisect_left(values, bounds[0])
    if comparison in ("LE", "<="):
        return 0, bisect.bisect_right(values, bounds[0])
    if comparison in ("GT", ">"):
        return bisect.bisect_right(values, bounds[0]), count
    if comparison in ("GE", ">="):
        return bisect.bisect_left(values, bounds[0]), count
    if comparison == "BETWEEN":
        return bisect.bisect_left(values, bounds[0]), bisect.bisect_right(values, bounds[1])
    if comparison == "BEGINS_WITH" and all(type(value) is str for value in values):
        first = end = bisect.bisect_left(values, bounds[0])
        while end < count and values[end].startswith(bounds[0]):
            end += 1
        return first, end
    return None


def _index_range_attr(table: Table, index_name: str) -> str | None:
    """The sort key of the table's index of that name, if it has one (and only one)."""
    for index in table.all_indexes():
        if index.name == index_name:
            ranges = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
            return ranges[0] if len(ranges) == 1 else None
    return None


def _range_order(item: Item) -> Any:
    return item.range_key.cast_value  # type: ignore[union-attr]


def _table_order(item: Item) -> Any:
    """moto's own order of a table's items (Table.all_items), on the keys' values (a key
    attribute has one type, so its values order as moto's typed values do)."""
    if item.range_key:
        return (item.hash_key.cast_value, item.range_key.cast_value)
    return item.hash_key.cast_value


def _sorted_items(
    table: Table, hash_attrs: list[str], range_attrs: list[str | None], items: list[Item]
) -> list[Item]:
    """moto's `Table.sorted_items` (by the index's keys, then the table's: the keys moto
    names), each sort key computed once per item; the table's order first, which breaks
    moto's ties (its sort is stable, over the table's order)."""
    items.sort(key=_table_order)
    names = table._generate_attr_to_sort_by(hash_attrs, range_attrs)
    items.sort(key=lambda item: tuple(item.attrs[name].cast_value for name in names))
    return items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if not _applies():
        _ORIGINAL(self, transact_items)
        return
    touched = _touched_items(self, transact_items)
    with _not_copied(table for table, *_ in touched):
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
def _not_copied(tables: Iterable[Table]) -> Iterator[None]:
    """moto's own backup, `copy.deepcopy(table)`, hands back each table itself meanwhile."""
    marked = set(tables)
    for table in marked:
        # copy.deepcopy looks __deepcopy__ up on the object, so this one table answers.
        table.__deepcopy__ = _same_table(table)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for table in marked:
            del table.__deepcopy__  # type: ignore[attr-defined]


def _same_table(table: Table) -> Callable[[dict[int, Any]], Table]:
    return lambda memo: table


def _serialize_type_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    """moto's JSON serializer's structure method, an `AttributeValue` of DynamoDB's
    written at once where it is a plain one (`_plain_attribute_value`)."""
    if (
        _applies()
        and key
        and shape.name == "AttributeValue"
        and self.operation_model.service_model.service_name == "dynamodb"
    ):
        plain = _plain_attribute_value(value)
        if plain is not None:
            serialized[key] = plain  # AttributeValue has no serialized name of its own
            return
    _ORIGINAL_STRUCTURE(self, serialized, value, shape, key)


_TEXT_TAGS = ("S", "N")
_FLAG_TAGS = ("NULL", "BOOL")
_TEXT_SET_TAGS = ("SS", "NS")


def _plain_attribute_value(value: Any) -> dict[str, Any] | None:
    """An attribute value as moto's serializer writes it, {"S": "x"}, where it is a dict
    of one type tag whose value it writes unchanged; None for anything else (binary
    values, which it base64-encodes; a tag it does not know; a value of another type)."""
    if type(value) is not dict or len(value) != 1:
        return None
    [(tag, inner)] = value.items()
    if tag in _TEXT_TAGS:
        return {tag: inner} if type(inner) is str else None
    if tag in _FLAG_TAGS:
        return {tag: inner} if type(inner) is bool else None
    if tag in _TEXT_SET_TAGS:
        if type(inner) is list and all(type(member) is str for member in inner):
            return {tag: list(inner)}
        return None
    if tag == "M" and type(inner) is dict:
        members = {name: _plain_attribute_value(member) for name, member in inner.items()}
        if any(member is None for member in members.values()):
            return None
        return {tag: members}
    if tag == "L" and type(inner) is list:
        items = [_plain_attribute_value(item) for item in inner]
        if any(item is None for item in items):
            return None
        return {tag: items}
    return None


def _method_names_of(cls: Any) -> list[str]:
    """moto's `method_names_from_class`, listed once per class (a copy each time)."""
    if not _applies():
        return _ORIGINAL_METHOD_NAMES(cls)
    if cls not in _method_names:
        _method_names[cls] = _ORIGINAL_METHOD_NAMES(cls)
    return list(_method_names[cls])
