"""The embedded moto's faster Query and projections (messenger_local.moto_speed) answer
as moto does: the same requests, once through the changes and once through moto
unchanged, get the same pages, items, counts and keys."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from moto import mock_aws

from messenger_local import moto_speed
from messenger_local.harness import serialize_moto

pytestmark = pytest.mark.integration

TABLE = "speed-queries"
PARTITIONS = ("alice", "bob", "carol")
# Numbers that sort differently as text and as numbers.
NUMBERS = ("10", "9", "-1.5", "100", "0", "2.25", "-30", "7")


def create_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
            {"AttributeName": "seq", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byNumber",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "n", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "byOrder",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["body"]},
            },
            {
                "IndexName": "byGroup",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    )


def fill(dynamodb: Any) -> None:
    """Items written out of order: messages, receipts and a profile in each partition,
    some outside an index (no `n`, no `order`), numbers that sort unlike their text."""
    rng = random.Random(7)
    items: list[dict[str, Any]] = []
    for pk in PARTITIONS:
        items.append({"pk": {"S": pk}, "sk": {"S": "PROFILE"}, "v": {"S": "profile"}})
        for i in range(24):
            kind = "m" if i % 3 else "r"
            item: dict[str, Any] = {
                "pk": {"S": pk},
                "sk": {"S": f"{kind}#{i:03d}"},
                "g": {"S": f"group{i % 2}"},
                "body": {"S": f"{pk} body {i}"},
                "meta": {"M": {"a": {"S": str(i)}, "b": {"L": [{"N": str(i)}, {"BOOL": True}]}}},
            }
            if i % 5:
                item["n"] = {"N": NUMBERS[i % len(NUMBERS)]}
            if i % 4:
                item["seq"] = {"S": f"{rng.randrange(1000):04d}"}
            items.append(item)
    rng.shuffle(items)
    for item in items:
        dynamodb.put_item(TableName=TABLE, Item=item)


def pages(dynamodb: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a Query: its items, counts and the key it ended on."""
    found: list[dict[str, Any]] = []
    start = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        page = dynamodb.query(TableName=TABLE, **request, **extra)
        found.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount")})
        start = page.get("LastEvaluatedKey")
        found[-1]["LastEvaluatedKey"] = start
        if not start:
            return found


def key(pk: str, condition: str = "", **values: str) -> dict[str, Any]:
    names = {"KeyConditionExpression": "pk = :pk" + (f" AND {condition}" if condition else "")}
    attribute_values = {":pk": {"S": pk}} | {f":{k}": {"S": v} for k, v in values.items()}
    return names | {"ExpressionAttributeValues": attribute_values}


def number_key(group: str, condition: str, **values: str) -> dict[str, Any]:
    attribute_values = {":g": {"S": group}} | {f":{k}": {"N": v} for k, v in values.items()}
    return {
        "IndexName": "byNumber",
        "KeyConditionExpression": f"g = :g AND {condition}",
        "ExpressionAttributeValues": attribute_values,
    }


QUERIES: list[dict[str, Any]] = [
    key("bob"),
    key("bob") | {"Limit": 7},
    key("bob", "begins_with(sk, :m)", m="m#") | {"Limit": 5},
    key("bob", "begins_with(sk, :m)", m="m#") | {"Limit": 5, "ScanIndexForward": False},
    key("alice", "sk > :after", after="m#007") | {"Limit": 4},
    key("alice", "sk BETWEEN :a AND :b", a="m#004", b="r#015"),
    key("carol", "sk <= :x", x="m#020") | {"ScanIndexForward": False, "Limit": 6},
    key("carol", "sk < :x", x="PROFILE"),
    key("nobody", "begins_with(sk, :m)", m="m#"),
    key("bob", "sk = :x", x="r#003"),
    key("bob", "sk >= :x", x="r#012") | {"Limit": 3},
    key("bob", "sk >= :x", x="r#021") | {"Limit": 1},
    key("alice", "sk < :x", x="m#010") | {"Limit": 2, "ScanIndexForward": False},
    key("bob") | {"ProjectionExpression": "pk, sk, n, body"},
    key("bob")
    | {"ProjectionExpression": "sk, meta.a, #v", "ExpressionAttributeNames": {"#v": "v"}},
    key("bob") | {"ProjectionExpression": "sk, meta.b[1]"},
    key("alice", "begins_with(sk, :m)", m="m#")
    | {"FilterExpression": "attribute_exists(n)", "Limit": 4, "ProjectionExpression": "sk, n"},
    number_key("group0", "n > :v", v="0") | {"Limit": 3},
    number_key("group1", "n BETWEEN :lo AND :hi", lo="-5", hi="9.5"),
    number_key("group1", "n <= :v", v="10") | {"ScanIndexForward": False, "Limit": 4},
    {
        "IndexName": "byOrder",
        "KeyConditionExpression": "g = :g AND seq > :o",
        "ExpressionAttributeValues": {":g": {"S": "group0"}, ":o": {"S": "0300"}},
        "Limit": 5,
    },
    {
        "IndexName": "byOrder",
        "KeyConditionExpression": "g = :g AND begins_with(seq, :o)",
        "ExpressionAttributeValues": {":g": {"S": "group1"}, ":o": {"S": "0"}},
        "Limit": 2,
    },
    {
        "IndexName": "byOrder",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "group1"}},
    },
    {
        "IndexName": "byGroup",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "group0"}},
        "Limit": 6,
    },
]


def answers(dynamodb: Any) -> list[Any]:
    found: list[Any] = [pages(dynamodb, dict(request)) for request in QUERIES]
    for pk, sk in (("bob", "m#004"), ("alice", "PROFILE")):
        request = {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}, "ProjectionExpression": "n, body, v"}
        found.append(dynamodb.get_item(TableName=TABLE, **request).get("Item"))
    return found


def test_queries_and_projections_answer_as_moto_does(monkeypatch: pytest.MonkeyPatch) -> None:
    serialize_moto()  # the harness's gate, which lets moto_speed's changes apply
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb)
        fill(dynamodb)
        # Given the answers with the changes in place
        fast = answers(dynamodb)
        # When the same requests meet moto unchanged
        with monkeypatch.context() as unchanged:
            unchanged.setattr(moto_speed, "_applies", lambda: False)
            moto_own = answers(dynamodb)
    # Then every page is the same, item for item, in the same order
    assert len(fast) == len(QUERIES) + 2
    for request, ours, theirs in zip([*QUERIES, "get", "get"], fast, moto_own, strict=True):
        assert ours == theirs, request
    # And the queries found something to compare: paged, numeric order, projections
    assert sum(len(page_list) > 1 for page_list in fast[: len(QUERIES)]) >= 6
    assert all(page_list[0]["Items"] for page_list in fast[: len(QUERIES)] if page_list[0]["Count"])
