"""What the embedded moto does to be fast stays invisible: in-process calls and HTTP calls
see one set of backends, and a cancelled transaction changes nothing."""

from __future__ import annotations

import secrets
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from messenger_local import EmbeddedAws
from messenger_local.aws import FAKE_CREDENTIALS

pytestmark = pytest.mark.e2e


def over_http(aws: EmbeddedAws) -> Any:
    """A DynamoDB client with no hook: every call is an HTTP request to moto's server."""
    session = boto3.Session(
        region_name=aws.region,
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
    )
    return session.client("dynamodb", endpoint_url=aws.endpoint)


def create_table(dynamodb: Any, *, index_on: str | None = None) -> str:
    """A table keyed (pk, sk), with a KEYS_ONLY index on one more attribute if asked."""
    name = f"speed-{secrets.token_hex(4)}"
    attributes = ["pk", "sk"] + ([index_on] if index_on else [])
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    }
    if index_on:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": f"by-{index_on}",
                "KeySchema": [{"AttributeName": index_on, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    dynamodb.create_table(**request)
    return name


@pytest.fixture
def table(shared_aws: EmbeddedAws) -> Any:
    dynamodb = shared_aws.client("dynamodb")
    name = create_table(dynamodb)
    yield name
    dynamodb.delete_table(TableName=name)


def dump(client: Any, name: str) -> list[dict[str, Any]]:
    items = client.scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def item(pk: str, sk: str, **values: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}} | {k: {"S": v} for k, v in values.items()}


def put_update_delete(table: str) -> list[dict[str, Any]]:
    """Transaction actions: put a new item, update item a, delete item b."""
    return [
        {"Put": {"TableName": table, "Item": item("new", "1", v="after")}},
        {
            "Update": {
                "TableName": table,
                "Key": item("a", "1"),
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"S": "after"}},
            }
        },
        {"Delete": {"TableName": table, "Key": item("b", "1")}},
    ]


def test_in_process_and_http_clients_share_the_backends(
    shared_aws: EmbeddedAws, table: str
) -> None:
    # Given a client of this process (served in-process) and one that goes over HTTP
    in_process, http = shared_aws.client("dynamodb"), over_http(shared_aws)
    # When each writes an item
    in_process.put_item(TableName=table, Item=item("a", "1", v="in-process"))
    http.put_item(TableName=table, Item=item("b", "1", v="http"))
    # Then each reads both
    assert dump(in_process, table) == dump(http, table)
    assert [i["v"]["S"] for i in dump(http, table)] == ["in-process", "http"]


def test_in_process_calls_keep_dynamodb_errors(shared_aws: EmbeddedAws, table: str) -> None:
    dynamodb = shared_aws.client("dynamodb")
    dynamodb.put_item(TableName=table, Item=item("a", "1"))
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(
            TableName=table, Item=item("a", "1"), ConditionExpression="attribute_not_exists(pk)"
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_a_cancelled_transaction_changes_nothing(shared_aws: EmbeddedAws, table: str) -> None:
    # Given a table with items, some of which a transaction will touch
    dynamodb = shared_aws.client("dynamodb")
    for pk in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item=item(pk, "1", v="before"))
    before = dump(dynamodb, table)
    # When a transaction puts a new item, updates one, deletes one, and then a condition
    # fails on its last action
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                *put_update_delete(table),
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": item("c", "1"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # Then it is refused, and the table is as it was, seen in-process and over HTTP
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert dump(dynamodb, table) == before
    assert dump(over_http(shared_aws), table) == before


def test_a_transaction_that_succeeds_applies_every_action(
    shared_aws: EmbeddedAws, table: str
) -> None:
    dynamodb = shared_aws.client("dynamodb")
    dynamodb.put_item(TableName=table, Item=item("a", "1", v="before"))
    dynamodb.put_item(TableName=table, Item=item("b", "1", v="before"))
    dynamodb.transact_write_items(TransactItems=put_update_delete(table))
    assert dump(dynamodb, table) == [item("a", "1", v="after"), item("new", "1", v="after")]


def test_a_query_reads_its_partition_in_order_across_pages(
    shared_aws: EmbeddedAws, table: str
) -> None:
    # Given items in three partitions, written out of order
    dynamodb = shared_aws.client("dynamodb")
    for sk in ("SUB#c", "PROFILE", "SUB#a", "SUB#b"):
        for pk in ("x", "y", "z"):
            dynamodb.put_item(TableName=table, Item=item(pk, sk, v=f"{pk}{sk}"))
    # When one partition is queried backwards, a page of two at a time
    pages: list[list[str]] = []
    start = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        page = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sub)",
            ExpressionAttributeValues={":pk": {"S": "y"}, ":sub": {"S": "SUB#"}},
            ScanIndexForward=False,
            Limit=2,
            **extra,
        )
        pages.append([i["sk"]["S"] for i in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    # Then it gets that partition's matching items, in sort key order, page by page
    assert [sk for page in pages for sk in page] == ["SUB#c", "SUB#b", "SUB#a"]
    assert pages[0] == ["SUB#c", "SUB#b"]


def test_an_index_query_keeps_moto_order_among_equal_index_keys(shared_aws: EmbeddedAws) -> None:
    # Given a table with an index, where several items share an index key
    dynamodb = shared_aws.client("dynamodb")
    name = create_table(dynamodb, index_on="conn")
    try:
        for pk, sk, conn in [
            ("b", "1", "c1"),
            ("a", "1", "c1"),
            ("c", "0", "c1"),
            ("a", "2", "c2"),
        ]:
            dynamodb.put_item(TableName=name, Item=item(pk, sk) | {"conn": {"S": conn}})
        dynamodb.put_item(TableName=name, Item=item("a", "5"))  # not in the index
        # When the index is queried for one key
        found = dynamodb.query(
            TableName=name,
            IndexName="by-conn",
            KeyConditionExpression="conn = :c",
            ExpressionAttributeValues={":c": {"S": "c1"}},
        )["Items"]
        # Then it gets exactly those items, in moto's order: the index's sort (here
        # by sk), ties in the table's key order whatever the order they were written in
        assert [(i["pk"]["S"], i["sk"]["S"]) for i in found] == [("c", "0"), ("a", "1"), ("b", "1")]
    finally:
        dynamodb.delete_table(TableName=name)
