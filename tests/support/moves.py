"""Shard moves on moto (docs/scale.md "Shard moves"), shared by the move's logic tests
(tests/functions/test_shard_moves.py) and the Mover's (tests/functions/test_mover.py):
three cells, each with its entry in a directory bucket, the users a move is about, and
what a test reads or puts in a cell's tables.

    with three_cells() as (cells, s3):
        ...publish the first map (the directory's own code), make the mover...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from nacl.signing import SigningKey

from messenger.dal.queue import QueuedMessage, new_seq
from messenger.logic.shard_move import CellTables, MovedConnections, ShardMove
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import publish_map, read_directory, write_entry
from messenger_local.aws import ACCOUNT_ID, REGION
from messenger_protocol.cells import ShardMap, shard
from tests.support.cells import CellsUnderTest, cells_harness, user_homed_in
from tests.support.harness import Harness
from tests.support.identities import TestUser

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CELLS = ("c0", "c1", "c2")
SHARDS = 65536  # the shard map's (ShardMap.even's default)
ALICE = user_homed_in("c0", "alice", CELLS)  # moves from c0 to c2
CAROL = user_homed_in("c0", "carol", CELLS)  # stays in c0
BOB = user_homed_in("c1", "bob", CELLS)  # writes to alice from c1
BUCKET = "test-directory"
# The deployment's directory key (in KMS on AWS).
SIGNER = SeedDirectorySigner(SigningKey.generate())


@contextmanager
def three_cells(**overrides: Any) -> Iterator[tuple[CellsUnderTest, S3Client]]:
    """CELLS on moto, each with its entry in the directory's bucket (BUCKET), and an S3
    client of that bucket's: no directory published yet. `overrides`: the cells' Settings
    that differ from the defaults."""
    with cells_harness(CELLS, **overrides) as cells:
        s3: S3Client = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        for cell in CELLS:
            write_entry(
                s3,
                BUCKET,
                cell,
                f"wss://{cell}.example/prod",
                owner=ACCOUNT_ID,
                epoch=f"{REGION}#0",
            )
        yield cells, s3


def settling(cells: CellsUnderTest) -> Callable[[float], None]:
    """A move's `wait`: every container of every cell reads the moves again at once (they
    cache them 2 s), whatever the wait asked."""

    def settle(seconds: float) -> None:
        for harness in cells.harnesses.values():
            harness.services.cells.forget()

    return settle


def alice_shard() -> int:
    """A shard of c0's holding alice but not carol."""
    mine = shard(ALICE.user_id, SHARDS)
    assert shard(CAROL.user_id, SHARDS) != mine
    return mine


def user_in_shards(name: str, lo: int, hi: int) -> TestUser:
    """A test user whose id (name, or name-N) is in a shard of lo..hi."""
    for n in range(100 * SHARDS // (hi - lo + 1)):
        user_id = name if n == 0 else f"{name}-{n}"
        if lo <= shard(user_id, SHARDS) <= hi:
            return TestUser(user_id)
    raise AssertionError(f"no id like {name!r} lands in shards {lo}-{hi}")


def queue_for(harness: Harness, recipient: TestUser, sender: TestUser, count: int) -> None:
    """`count` messages queued for `recipient` in `harness`'s cell, in order."""
    now_ns = harness.clock.now_ns()
    for n in range(count):
        at_us = now_ns // 1000 + n
        harness.services.queue.store_message(
            QueuedMessage(
                recipient=recipient.user_id,
                sender=sender.user_id,
                message_id=f"msg-queued-{n:05d}",
                body="Ym9keQ",
                nonce="bm9uY2U",
                sent_at=1,
                server_ts=at_us // 1000,
                seq=new_seq(at_us),
                expires_at=now_ns // 1_000_000_000 + 3600,
            ),
            now_ns // 1_000_000_000,
        )


def queue_ids(harness: Harness, user: TestUser) -> list[tuple[str, str]]:
    """(sk, seq) of a user's queue in a cell, in store order."""
    items = harness.queue_of(user)
    return sorted(
        ((item["sk"]["S"], item.get("seq", {}).get("S", "")) for item in items),
        key=lambda pair: pair[1],
    )


def items_of(harness: Harness, user: TestUser) -> list[dict[str, Any]]:
    """Every Users-table item of a user in a cell (profile, blocks, nonces...)."""
    return [
        item
        for item in harness.dump()[harness.table_names["Users"]]
        if item["pk"]["S"] in (f"U#{user.user_id}",)
        or item["pk"]["S"].startswith(f"N#{user.user_id}#")
    ]


class BucketPublisher:
    """The directory in a (moto) bucket, published by the directory's own merge."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def current_map(self) -> ShardMap:
        directory = read_directory(self._s3, BUCKET)
        assert directory is not None
        return directory.shard_map

    def publish(self, shard_map: ShardMap) -> int:
        outcome = publish_map(self._s3, BUCKET, shard_map, SIGNER)
        assert outcome.directory is not None
        return outcome.directory.version

    @property
    def version(self) -> int:
        directory = read_directory(self._s3, BUCKET)
        assert directory is not None
        return directory.version


class Killed(Exception):
    """The runner stopped here (a crash, a timeout), as a test makes it."""


@dataclass
class Deployment:
    cells: CellsUnderTest
    mover: ShardMove
    directory: BucketPublisher

    def __getitem__(self, cell: str) -> Harness:
        return self.cells[cell]

    def move(self, lo: int, hi: int, source: str = "c0", target: str = "c2") -> Any:
        record = self.mover.start(source, target, lo, hi)
        return self.mover.run(source, record.move_id)


@contextmanager
def moving_deployment(
    wait: Callable[[CellsUnderTest], Callable[[float], None]] = settling,
    **overrides: Any,
) -> Iterator[Deployment]:
    """CELLS with the first map published and a mover between them (ShardMove, the steps
    as on AWS); `wait`: the mover's wait, given the cells (default: every cell re-reads);
    `overrides`: the cells' Settings that differ from the defaults."""
    with three_cells(**overrides) as (cells, s3):
        publisher = BucketPublisher(s3)
        publisher.publish(ShardMap.even(list(CELLS)))
        tables = {
            cell: CellTables.of(
                cell,
                harness.dynamodb,
                harness.table_names["Users"],
                harness.table_names["Queue"],
                harness.table_names["Limits"],
            )
            for cell, harness in cells.harnesses.items()
        }
        closers = {
            cell: MovedConnections(
                harness.services.connections(harness.settings.connections_endpoint or "")
            )
            for cell, harness in cells.harnesses.items()
        }
        mover = ShardMove(tables, publisher, closers, cells["c0"].clock, wait=wait(cells))
        yield Deployment(cells, mover, publisher)
