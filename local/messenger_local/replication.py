"""Cross-region replication emulated as DynamoDB global tables (MREC) do it.

A `Replicator` copies every write made to a set of primary tables onto a set of standby
tables in the same embedded moto: asynchronously, `lag` seconds after the write, one
item at a time (a transaction's items each on their own, in the order the transaction
named them), last writer wins. `drop_pending()` is the region loss: what was written
but not yet replicated is gone, and the call says how many writes that was.

The writes are captured where they happen, inside moto's DynamoDB backend, for the
requests let in by `aws.MotoGate` (that is every boto3 call of the functions, in
process or over HTTP): after a PutItem, UpdateItem or DeleteItem (alone, in a
BatchWriteItem or in a TransactWriteItems) succeeds, the item's new image (or its
absence) is recorded with the time of the write. A transaction that fails records
nothing, as nothing of it was written. moto's Streams were the other way in, but a
failed transaction's rollback (moto_speed's, and moto's own table swap) would reach the
standby as writes no one made.

Last writer wins, as global tables reconcile: each standby item remembers the time of
the write that made it (a replicated one's is the primary's write time; one made in the
standby region is its own), and a replicated write older than that is discarded.
Replication is one way, primary to standby: the emulator has no failback.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from messenger_local import moto_speed
from messenger_local.aws import ACCOUNT_ID, MotoGate

Image = dict[str, Any]  # an item in DynamoDB's JSON, {"pk": {"S": "..."}, ...}
KeyId = tuple[str, str]  # (table name, the item's key as a canonical string)


@dataclass(frozen=True)
class Write:
    """One item written: its new image, or None when the write deleted it."""

    table: str
    key: Image
    image: Image | None
    at: float  # time.time() of the write
    sequence: int  # breaks ties between writes of the same instant, in write order


class _Capture:
    """The writes made to watched tables, handed to their listener as they succeed."""

    def __init__(self) -> None:
        self._listeners: dict[str, Callable[[Write], None]] = {}
        self._sequence = 0
        self._in_transaction = threading.local()

    def watch(self, tables: Mapping[str, Callable[[Write], None]]) -> None:
        self._listeners.update(tables)

    def unwatch(self, tables: list[str]) -> None:
        for name in tables:
            self._listeners.pop(name, None)

    def written(self, table: Table, key: Image) -> None:
        """Called by the patched backend after a write succeeded (the gate is held)."""
        listener = self._listeners.get(table.name)
        if listener is None:
            return
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_key, range_key)
        image = copy.deepcopy(item.to_json()["Attributes"]) if item is not None else None
        self._sequence += 1
        write = Write(table.name, dict(key), image, time.time(), self._sequence)
        pending: list[tuple[Callable[[Write], None], Write]] | None = getattr(
            self._in_transaction, "writes", None
        )
        if pending is not None:
            pending.append((listener, write))
        else:
            listener(write)

    def transaction(self, run: Callable[[], None]) -> None:
        """Run a TransactWriteItems: its writes reach the listeners only if all succeed."""
        if getattr(self._in_transaction, "writes", None) is not None:
            run()  # nested (never by moto): the outer one decides
            return
        writes: list[tuple[Callable[[Write], None], Write]] = []
        self._in_transaction.writes = writes
        try:
            run()
        finally:
            self._in_transaction.writes = None
        for listener, write in writes:
            listener(write)


_capture = _Capture()


def _key_of(table: Table, attributes: Image) -> Image:
    names = [table.hash_key_attr, table.range_key_attr]
    return {name: attributes[name] for name in names if name is not None and name in attributes}


_WRAPPERS: set[Any] = set()  # the backend methods this module put in place


def install() -> None:
    """Capture the writes of moto's DynamoDB backend (idempotent)."""
    moto_speed.install()  # first: the capture wraps its transaction method
    transact_write_items = DynamoDBBackend.transact_write_items
    if transact_write_items not in _WRAPPERS:

        def transact(self: DynamoDBBackend, transact_items: list[Any]) -> None:
            _capture.transaction(lambda: transact_write_items(self, transact_items))

        _WRAPPERS.add(transact)
        DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]
    if DynamoDBBackend.put_item in _WRAPPERS:
        return
    put_item, update_item, delete_item = (
        DynamoDBBackend.put_item,
        DynamoDBBackend.update_item,
        DynamoDBBackend.delete_item,
    )

    def put(self: DynamoDBBackend, table_name: str, item_attrs: Image, *a: Any, **k: Any) -> Any:
        result = put_item(self, table_name, item_attrs, *a, **k)
        table = self.get_table(table_name)
        _capture.written(table, _key_of(table, item_attrs))
        return result

    def update(self: DynamoDBBackend, table_name: str, key: Image, *a: Any, **k: Any) -> Any:
        result = update_item(self, table_name, key, *a, **k)
        _capture.written(self.get_table(table_name), key)
        return result

    def delete(self: DynamoDBBackend, table_name: str, key: Image, *a: Any, **k: Any) -> Any:
        result = delete_item(self, table_name, key, *a, **k)
        _capture.written(self.get_table(table_name), key)
        return result

    _WRAPPERS.update((put, update, delete))
    DynamoDBBackend.put_item = put  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update  # type: ignore[method-assign]
    DynamoDBBackend.delete_item = delete  # type: ignore[method-assign]


def _key_id(table: str, key: Image) -> KeyId:
    return table, repr(sorted(key.items()))


class Replicator:
    """Replicates `tables` (primary name -> standby name) after `lag` seconds, on a thread.

    `gate` is the embedded moto's (`EmbeddedAws.gate`): the replicator writes into moto's
    backend holding it, as any request does; `region` is the backend's.
    """

    def __init__(
        self, tables: Mapping[str, str], *, lag: float, gate: MotoGate, region: str
    ) -> None:
        if lag < 0:
            raise ValueError("the replication lag cannot be negative")
        self.lag = lag
        self._tables = dict(tables)
        self._gate = gate
        self._region = region
        self._pending: deque[Write] = deque()
        self._condition = threading.Condition()
        # (standby table, key) -> (at, sequence) of the write that made the standby item.
        self._versions: dict[KeyId, tuple[float, int]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._applying = False
        self.replicated = 0  # writes applied to the standby
        self.superseded = 0  # replicated writes discarded: the standby had a newer one
        self.dropped = 0  # writes lost to drop_pending

    @property
    def pending(self) -> int:
        """Writes made to the primary and not yet applied to the standby."""
        with self._condition:
            return len(self._pending)

    def start(self) -> None:
        """Capture the primary's writes (and the standby's own) and start replicating."""
        install()
        _capture.watch(dict.fromkeys(self._tables, self._captured_in_primary))
        _capture.watch(dict.fromkeys(self._tables.values(), self._captured_in_standby))
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="replicator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop capturing and replicating; what is pending stays unapplied."""
        _capture.unwatch([*self._tables, *self._tables.values()])
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def drop_pending(self) -> int:
        """Discard every write not yet replicated (a region lost); how many there were."""
        with self._condition:
            dropped = len(self._pending)
            self._pending.clear()
            self.dropped += dropped
            return dropped

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every write captured so far has been replicated."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending or self._applying:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._pending)} writes still pending")
                self._condition.wait(remaining)

    # --- the capture's listeners (called with the gate held) --------------------------

    def _captured_in_primary(self, write: Write) -> None:
        with self._condition:
            self._pending.append(write)
            self._condition.notify_all()

    def _captured_in_standby(self, write: Write) -> None:
        # A write made in the standby region itself: newer than anything replicated so far.
        self._versions[_key_id(write.table, write.key)] = (write.at, write.sequence)

    # --- the replicator thread -----------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                due = self._next_due()
                if due is None:
                    return
            self._apply(due)

    def _next_due(self) -> Write | None:
        """The oldest pending write once its lag has passed; None when stopping."""
        while not self._stopping:
            if self._pending:
                wait = self._pending[0].at + self.lag - time.time()
                if wait <= 0:
                    return self._pending[0]
                self._condition.wait(wait)
            else:
                self._condition.wait()
        return None

    def _apply(self, write: Write) -> None:
        with self._gate:
            with self._condition:
                # drop_pending may have run since: only what is still pending is applied.
                if not self._pending or self._pending[0] is not write:
                    return
                self._pending.popleft()
                self._applying = True
            self._write_to_standby(write)
        with self._condition:
            self._applying = False
            self._condition.notify_all()  # flush() waits for this

    def _write_to_standby(self, write: Write) -> None:
        standby_name = self._tables[write.table]
        key_id = _key_id(standby_name, write.key)
        version = (write.at, write.sequence)
        if self._versions.get(key_id, (0.0, 0)) > version:
            self.superseded += 1
            return
        self._versions[key_id] = version
        table = dynamodb_backends[ACCOUNT_ID][self._region].get_table(standby_name)
        # The table's own methods: the capture sees only requests' writes.
        if write.image is None:
            hash_key = DynamoType(write.key[table.hash_key_attr])
            range_key = (
                DynamoType(write.key[table.range_key_attr]) if table.range_key_attr else None
            )
            table.delete_item(hash_key, range_key)
        else:
            table.put_item(copy.deepcopy(write.image))
        self.replicated += 1
