"""Whom a user blocks, in the Users table (docs/protocol.md §2, setBlocked).

Attribute this module owns on ("U#<userId>", "PROFILE") (dal/profiles.py reads it):
`blockCount`, how many users the owner blocks (absent: none). Every path that reads the
profile already (a send, a markSeen, a presence question) learns from it whether a block
item can exist at all, so a user who blocks no one costs those paths no read.

Item layout (pk, sk):
- ("U#<userId>", "BLOCK#<blockedId>"): the owner blocks that user.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messenger.dal.batch import get_all, query_pages, write_all
from messenger.dal.profiles import Profile, profile_key, user_key, user_of_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BLOCK_PREFIX = "BLOCK#"
BLOCK_COUNT = "blockCount"


def _block_key(owner: str, blocked: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(owner)}, "sk": {"S": f"{BLOCK_PREFIX}{blocked}"}}


class Blocks:
    """The users each user blocks."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def blocks(self, owner: Profile, candidate: str) -> bool:
        """Whether `owner` blocks `candidate`: no read unless the owner blocks anyone, else
        one GetItem."""
        if not owner.blocked_count:
            return False
        response = self._client.get_item(
            TableName=self._table, Key=_block_key(owner.user_id, candidate)
        )
        return "Item" in response

    def blockers_among(self, owners: Iterable[Profile], candidate: str) -> set[str]:
        """Which of these users block `candidate` (one BatchGetItem per 100 who block
        anyone)."""
        keys = [_block_key(owner.user_id, candidate) for owner in owners if owner.blocked_count]
        found = get_all(self._client, self._table, keys)
        return {user_of_key(item["pk"]["S"]) for item in found}

    def blocked_among(self, owner: Profile, candidates: Iterable[str]) -> set[str]:
        """Which of `candidates` the owner blocks."""
        if not owner.blocked_count:
            return set()
        keys = [_block_key(owner.user_id, c) for c in dict.fromkeys(candidates)]
        found = get_all(self._client, self._table, keys)
        return {item["sk"]["S"].removeprefix(BLOCK_PREFIX) for item in found}

    def blocked_by(self, user_id: str) -> list[str]:
        """Everyone the user blocks, in id order (a consistent read: setBlocked edits it)."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":prefix": {"S": BLOCK_PREFIX},
            },
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        return [
            item["sk"]["S"].removeprefix(BLOCK_PREFIX)
            for items in query_pages(self._client, query)
            for item in items
        ]

    def set_blocked(self, user_id: str, before: Sequence[str], after: Sequence[str]) -> None:
        """Go from blocking `before` to blocking `after`.

        The count on the profile is raised before new items are written and lowered only
        after old ones are deleted, so a reader never skips a block item that exists. Two
        setBlocked of one user at the same instant (two devices) may leave the count off
        by their difference until the next one; it is a hint only while it is not 0.
        """
        added = [u for u in after if u not in set(before)]
        removed = [u for u in before if u not in set(after)]
        if not added and not removed:
            return
        if added:
            self._set_count(user_id, max(len(before), len(after)))
            write_all(
                self._client,
                self._table,
                [{"PutRequest": {"Item": _block_key(user_id, u)}} for u in added],
            )
        if removed:
            write_all(
                self._client,
                self._table,
                [{"DeleteRequest": {"Key": _block_key(user_id, u)}} for u in removed],
            )
        self._set_count(user_id, len(after))

    def _set_count(self, user_id: str, blocked: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=profile_key(user_id),
            UpdateExpression=f"SET {BLOCK_COUNT} = :count",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":count": {"N": str(blocked)}},
        )
