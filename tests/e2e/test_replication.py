"""The replication emulator behaves as DynamoDB global tables (MREC) replicate.

Real boto3 clients write to the primary's tables and read the standby's, on the
embedded moto the local stack uses; the replicator copies what the requests wrote.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.contract import Env
from messenger_local import EmbeddedAws
from messenger_local.replication import Replicator

pytestmark = pytest.mark.e2e

LAG = 0.4


class Region:
    """One side's tables (by logical name) and a client that reaches them."""

    def __init__(self, aws: EmbeddedAws, prefix: str) -> None:
        self.names = aws.create_tables(prefix)
        self.dynamodb = aws.client("dynamodb")

    @property
    def users(self) -> str:
        return self.names[Env.USERS_TABLE]

    @property
    def queue(self) -> str:
        return self.names[Env.QUEUE_TABLE]

    def item(self, table: str, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self.dynamodb.get_item(
            TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return answer.get("Item")


@pytest.fixture
def regions(shared_aws: EmbeddedAws) -> Iterator[tuple[Region, Region, Replicator]]:
    run = uuid.uuid4().hex[:8]
    primary = Region(shared_aws, f"repl-{run}-primary-")
    standby = Region(shared_aws, f"repl-{run}-standby-")
    tables = {primary.names[env]: standby.names[env] for env in primary.names}
    replicator = Replicator(tables, lag=LAG, gate=shared_aws.gate, region=shared_aws.region)
    replicator.start()
    yield primary, standby, replicator
    replicator.stop()
    shared_aws.delete_tables([*primary.names.values(), *standby.names.values()])


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_a_put_reaches_the_standby_after_the_lag_not_before(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # Given an item written to the primary
    written_at = time.time()
    primary.dynamodb.put_item(
        TableName=primary.users, Item={**key("U#bob", "PROFILE"), "boxKey": {"S": "k1"}}
    )
    # Then the standby does not have it before the lag has passed
    assert standby.item(standby.users, "U#bob", "PROFILE") is None
    assert replicator.pending == 1
    # When the lag has passed
    replicator.flush()
    # Then the standby has it, not earlier than the lag after the write
    assert time.time() - written_at >= LAG
    assert standby.item(standby.users, "U#bob", "PROFILE") == {
        **key("U#bob", "PROFILE"),
        "boxKey": {"S": "k1"},
    }
    assert replicator.pending == 0
    assert replicator.replicated == 1


def test_updates_and_deletes_replicate_as_the_item_they_left(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # Given an item replicated to the standby
    primary.dynamodb.put_item(
        TableName=primary.queue, Item={**key("Q#bob", "m#1"), "n": {"N": "1"}}
    )
    primary.dynamodb.put_item(
        TableName=primary.queue, Item={**key("Q#bob", "m#2"), "n": {"N": "1"}}
    )
    replicator.flush()
    # When the primary updates one (an expression only the primary evaluates) and
    # deletes the other
    primary.dynamodb.update_item(
        TableName=primary.queue,
        Key=key("Q#bob", "m#1"),
        UpdateExpression="ADD n :one SET body = :b",
        ExpressionAttributeValues={":one": {"N": "1"}, ":b": {"S": "hi"}},
    )
    primary.dynamodb.delete_item(TableName=primary.queue, Key=key("Q#bob", "m#2"))
    # Then the standby still has both as they were until the lag has passed
    assert standby.item(standby.queue, "Q#bob", "m#1") == {
        **key("Q#bob", "m#1"),
        "n": {"N": "1"},
    }
    assert standby.item(standby.queue, "Q#bob", "m#2") is not None
    replicator.flush()
    # And then it has the updated item and not the deleted one
    assert standby.item(standby.queue, "Q#bob", "m#1") == {
        **key("Q#bob", "m#1"),
        "n": {"N": "2"},
        "body": {"S": "hi"},
    }
    assert standby.item(standby.queue, "Q#bob", "m#2") is None


def test_a_transaction_replicates_item_by_item_and_a_failed_one_not_at_all(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # Given a transaction over two tables, and one refused by its condition
    primary.dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": primary.users, "Item": key("U#amy", "PROFILE")}},
            {"Put": {"TableName": primary.queue, "Item": key("Q#amy", "m#1")}},
        ]
    )
    with pytest.raises(primary.dynamodb.exceptions.TransactionCanceledException):
        primary.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": primary.queue, "Item": key("Q#amy", "m#2")}},
                {
                    "Put": {
                        "TableName": primary.users,
                        "Item": key("U#amy", "PROFILE"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # Then the first one's two items are two writes to replicate; the refused one is none
    assert replicator.pending == 2
    replicator.flush()
    assert standby.item(standby.users, "U#amy", "PROFILE") is not None
    assert standby.item(standby.queue, "Q#amy", "m#1") is not None
    assert standby.item(standby.queue, "Q#amy", "m#2") is None
    assert replicator.replicated == 2


def test_a_batch_write_replicates_each_item(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # When a batch puts three items
    primary.dynamodb.batch_write_item(
        RequestItems={
            primary.queue: [{"PutRequest": {"Item": key("Q#cy", f"m#{n}")}} for n in range(3)]
        }
    )
    # Then three writes replicate
    assert replicator.pending == 3
    replicator.flush()
    assert all(standby.item(standby.queue, "Q#cy", f"m#{n}") for n in range(3))


def test_last_writer_wins_against_a_newer_write_in_the_standby(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # Given a write to the primary, then a later write to the same item in the standby
    # region itself, before the primary's has replicated
    primary.dynamodb.put_item(
        TableName=primary.users, Item={**key("CELL", "EPOCH"), "generation": {"N": "1"}}
    )
    standby.dynamodb.put_item(
        TableName=standby.users, Item={**key("CELL", "EPOCH"), "generation": {"N": "7"}}
    )
    # When the primary's write arrives
    replicator.flush()
    # Then the later writer (the standby's) wins, and the older write is discarded
    assert standby.item(standby.users, "CELL", "EPOCH") == {
        **key("CELL", "EPOCH"),
        "generation": {"N": "7"},
    }
    assert replicator.superseded == 1
    # And a write made to the primary after it wins in its turn
    primary.dynamodb.put_item(
        TableName=primary.users, Item={**key("CELL", "EPOCH"), "generation": {"N": "9"}}
    )
    replicator.flush()
    assert standby.item(standby.users, "CELL", "EPOCH") == {
        **key("CELL", "EPOCH"),
        "generation": {"N": "9"},
    }


def test_successive_writes_to_one_item_end_as_the_last(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # When the primary writes one item five times
    for n in range(5):
        primary.dynamodb.put_item(
            TableName=primary.queue, Item={**key("Q#di", "m#1"), "n": {"N": str(n)}}
        )
    replicator.flush()
    # Then the standby holds the last
    assert standby.item(standby.queue, "Q#di", "m#1") == {**key("Q#di", "m#1"), "n": {"N": "4"}}


def test_drop_pending_loses_exactly_the_unreplicated_writes(
    regions: tuple[Region, Region, Replicator],
) -> None:
    primary, standby, replicator = regions
    # Given one write replicated, then three more not yet
    primary.dynamodb.put_item(TableName=primary.queue, Item=key("Q#ed", "m#0"))
    replicator.flush()
    for n in range(1, 4):
        primary.dynamodb.put_item(TableName=primary.queue, Item=key("Q#ed", f"m#{n}"))
    # When the region is lost
    dropped = replicator.drop_pending()
    # Then three writes were dropped, and they never reach the standby
    assert dropped == 3
    assert replicator.pending == 0
    time.sleep(LAG * 2)
    assert standby.item(standby.queue, "Q#ed", "m#0") is not None
    assert [standby.item(standby.queue, "Q#ed", f"m#{n}") for n in range(1, 4)] == [None] * 3
    assert replicator.dropped == 3
    # And a second drop finds nothing left
    assert replicator.drop_pending() == 0


def test_writes_to_other_tables_are_not_replicated(
    shared_aws: EmbeddedAws, regions: tuple[Region, Region, Replicator]
) -> None:
    _, _, replicator = regions
    # Given a table outside the replicated set
    other = Region(shared_aws, f"repl-{uuid.uuid4().hex[:8]}-other-")
    try:
        # When it is written
        other.dynamodb.put_item(TableName=other.queue, Item=key("Q#x", "m#1"))
        # Then nothing is pending
        assert replicator.pending == 0
    finally:
        shared_aws.delete_tables(list(other.names.values()))
