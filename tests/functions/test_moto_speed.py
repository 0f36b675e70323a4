"""messenger_local.moto_speed writes DynamoDB's attribute values itself: the same answer,
byte for byte, as moto's own serializer, for every type an item can hold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from messenger_local import moto_speed

pytestmark = pytest.mark.integration

TABLE = "every-type"

# Every attribute type, nested both ways, with the values that trip serializers up.
ITEMS: list[dict[str, Any]] = [
    {
        "pk": {"S": "p"},
        "sk": {"S": "0"},
        "text": {"S": 'héllo \u2603 "quoted"'},
        "empty": {"S": ""},
        "number": {"N": "-12.5e3"},
        "binary": {"B": b"\x00\xffbinary"},
        "texts": {"SS": ["a", "b", "c"]},
        "numbers": {"NS": ["1", "2.5"]},
        "binaries": {"BS": [b"x", b"\x01"]},
        "null": {"NULL": True},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
    },
    {
        "pk": {"S": "p"},
        "sk": {"S": "1"},
        "map": {
            "M": {
                "inner": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}}},
                "blob": {"B": b"in a map"},
                "flag": {"BOOL": False},
                "empty": {"M": {}},
            }
        },
        "list": {"L": [{"M": {"k": {"SS": ["v"]}}}, {"L": []}, {"BS": [b"y"]}]},
    },
    {"pk": {"S": "p"}, "sk": {"S": "2"}, "plain": {"M": {"only": {"S": "text"}}}},
]


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    from moto import mock_aws

    moto_speed.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for item in ITEMS:
            client.put_item(TableName=TABLE, Item=item)
        yield client


def answers(client: Any, serialized: bool) -> list[bytes]:
    """The raw bodies moto answers an UpdateItem, a Query, a Scan, a GetItem and a
    BatchGetItem with,
    with moto_speed's changes applied (serialized) or not."""
    bodies: list[bytes] = []

    def keep(response_dict: dict[str, Any], **kwargs: Any) -> None:
        bodies.append(response_dict["body"])

    client.meta.events.register("before-parse.dynamodb", keep)
    moto_speed.mark_serialized(serialized)
    try:
        client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "p"}, "sk": {"S": "2"}},
            UpdateExpression="SET added = :a",
            ExpressionAttributeValues={":a": {"L": [{"S": "z"}]}},
            ReturnValues="ALL_NEW",
        )
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
        )
        client.scan(TableName=TABLE)
        client.get_item(TableName=TABLE, Key={"pk": {"S": "p"}, "sk": {"S": "1"}})
        client.batch_get_item(
            RequestItems={
                TABLE: {"Keys": [{"pk": {"S": "p"}, "sk": {"S": str(n)}} for n in range(3)]}
            }
        )
    finally:
        moto_speed.mark_serialized(False)
        client.meta.events.unregister("before-parse.dynamodb", keep)
    return bodies


def test_given_every_attribute_type_then_the_answers_are_moto_s_own_byte_for_byte(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = {"plain": 0, "moto": 0}
    plain_value = moto_speed._plain_attribute_value

    def counted(value: Any) -> dict[str, Any] | None:
        plain = plain_value(value)
        written["moto" if plain is None else "plain"] += 1
        return plain

    monkeypatch.setattr(moto_speed, "_plain_attribute_value", counted)
    # When the same reads are answered by moto's serializer and with moto_speed's
    own = answers(dynamodb, serialized=False)
    fast = answers(dynamodb, serialized=True)

    # Then every body is the same bytes (the update, first, writes the same value both times)
    assert len(own) == len(fast) == 5
    assert fast == own
    assert b'"B": "AP9iaW5hcnk="' in own[1]  # base64-encoded, as AWS answers
    # And the fast path wrote most of them (the binary values were left to moto)
    assert written["plain"] > 30 and written["moto"] >= 1


def test_given_plain_and_binary_values_then_only_plain_ones_are_written_directly() -> None:
    assert moto_speed._plain_attribute_value({"M": {"a": {"L": [{"N": "1"}]}}}) == {
        "M": {"a": {"L": [{"N": "1"}]}}
    }
    for left_to_moto in (
        {"B": b"x"},
        {"M": {"a": {"BS": [b"x"]}}},
        {"L": [{"S": "x"}, {"B": b"y"}]},
        {"S": "x", "N": "1"},
        {"S": None},
        {"SS": ("a",)},
        "S",
    ):
        assert moto_speed._plain_attribute_value(left_to_moto) is None, left_to_moto
