"""Secrets the server keeps for itself, one item each in the Users table.

Item layout: ("KEY#<name>", "KEY") with `secret` (32 random bytes, in base64url). A key is made
by the first function that needs one (a conditional put, so concurrent first uses agree
on one key) and never changes; only functions read it, clients never see it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger_protocol.encoding import b64url_decode, b64url_encode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_BYTES = 32


class ServerKeys:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def find(self, name: str) -> bytes | None:
        """The key, if one was made (a strongly consistent read: a key made a moment ago
        by another function is seen)."""
        response = self._client.get_item(
            TableName=self._table,
            Key=_key(name),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return b64url_decode(item["secret"]["S"]) if item else None

    def find_or_make(self, name: str) -> bytes:
        """The key, made now if it does not exist yet."""
        found = self.find(name)
        if found is not None:
            return found
        made = secrets.token_bytes(KEY_BYTES)
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item={**_key(name), "secret": {"S": b64url_encode(made)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConditionFailed:
            found = self.find(name)  # another function made it first: use that one
            if found is None:
                raise
            return found
        return made


def _key(name: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"KEY#{name}"}, "sk": {"S": "KEY"}}
