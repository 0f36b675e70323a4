"""A range of shards' items in one table, a page at a time: what a shard move copies and
then deletes (logic/shard_move.py, docs/scale.md "Shard moves").

A move is an operator's path, run rarely and for a whole range at once, so it reads a
table with Scan, a page at a time, and keeps the items whose owner (the user whose
partition or nonce they are) falls in the range. Cost: one pass over the table for the
copy and one for the delete, half a read unit per 4 KB (eventually consistent), whatever
share of it moves; a per-shard index would have cost a write unit on every profile and
queue write of every request, forever, to save that. Nothing here runs on a request path.

Per table, whose items are whose:
- Users: `U#<userId>` (profile, contacts, blocks, subscriptions and interests) and
  `N#<userId>#<nonce>` (spent connect nonces); the cell's own items (`CELL`, `MOVE`,
  `KEY#...`) are no one's and never move.
- Queue: every item's pk is its recipient device's queue (its user, or "<userId>#<deviceId>").
- Limits: `U#<userId>` counters (queue caps); rate-limit buckets (`RATE#...`) start afresh
  in the new home (docs/protocol.md §6) and registration counters (`IP#...`) stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from messenger.dal.batch import write_all
from messenger.dal.queue import user_of_queue
from messenger_protocol.cells import shard

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

USER_PREFIX = "U#"
NONCE_PREFIX = "N#"
RATE_PREFIX = "RATE#"
WATCH_PREFIX = "WATCH#"
SUB_PREFIX = "SUB#"
PROFILE_SK = "PROFILE"
# Items a page of the Scan reads at most (a step records its place after each page).
PAGE_ITEMS = 200


class TableRole(StrEnum):
    USERS = "users"
    QUEUE = "queue"
    LIMITS = "limits"


def owner_of(role: TableRole, item: dict[str, Any]) -> str | None:
    """The user whose item this is, or None for an item that belongs to the cell."""
    pk = item["pk"]["S"]
    sk = item["sk"]["S"]
    if role is TableRole.QUEUE:
        # A linked device's queue is "<userId>#<deviceId>" (dal/queue.py): its user's.
        return user_of_queue(pk)
    if pk.startswith(USER_PREFIX):
        if role is TableRole.LIMITS and sk.startswith(RATE_PREFIX):
            return None
        return pk[len(USER_PREFIX) :]
    if role is TableRole.USERS and pk.startswith(NONCE_PREFIX):
        return pk[len(NONCE_PREFIX) :].split("#", 1)[0]
    return None


def moved_copy(role: TableRole, item: dict[str, Any], old_home: str) -> dict[str, Any] | None:
    """What the new home stores for an item of the range: the whole item (so that
    attributes added by later versions travel too), except what belongs to the old home's
    connections, which close when the move switches:

    - a profile's `conns` (connection ids of the old home's API) start empty;
    - a connection's watch list (`WATCH#<connectionId>`) stays behind (None);
    - a subscription of an old-home connection to this user (`SUB#<connectionId>`) becomes
      an interest of the old home (`WATCH#<old home>#<watcher>`), as for any other cell's
      watcher: the new home tells the old one, which tells the connection.
    """
    if role is not TableRole.USERS:
        return dict(item)
    sk = item["sk"]["S"]
    if sk == PROFILE_SK:
        return item | {"conns": {"M": {}}}
    if sk.startswith(WATCH_PREFIX) and "#" not in sk[len(WATCH_PREFIX) :]:
        return None
    if sk.startswith(SUB_PREFIX) and "watcher" in item:
        watcher = item["watcher"]["S"]
        interest = {
            "pk": item["pk"],
            "sk": {"S": f"{WATCH_PREFIX}{old_home}#{watcher}"},
            "watcherCell": {"S": old_home},
            "watcher": {"S": watcher},
        }
        if "expiresAt" in item:
            interest["expiresAt"] = item["expiresAt"]
        return interest
    return dict(item)


@dataclass(frozen=True)
class ShardSpan:
    """Shards lo..hi (inclusive) of a map of `shards`."""

    lo: int
    hi: int
    shards: int

    def holds(self, user_id: str) -> bool:
        return self.lo <= shard(user_id, self.shards) <= self.hi


@dataclass(frozen=True)
class Page:
    """One page of a table's items of the range, and where the next page starts."""

    items: list[dict[str, Any]]
    next_start: dict[str, Any] | None  # None: this was the last page
    owners: frozenset[str]


class RangeItems:
    """One cell's table, as a move sees it."""

    def __init__(self, client: DynamoDBClient, table: str, role: TableRole) -> None:
        self._client = client
        self.table = table
        self.role = role

    def page(self, span: ShardSpan, start: dict[str, Any] | None) -> Page:
        """The range's items of the next page of the table (Scan, strongly consistent:
        the copy must see every write made before the fence took hold)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Limit": PAGE_ITEMS,
            "ConsistentRead": True,
        }
        if start:
            request["ExclusiveStartKey"] = start
        response = self._client.scan(**request)
        items = []
        owners = set()
        for item in response.get("Items", []):
            owner = owner_of(self.role, item)
            if owner is not None and span.holds(owner):
                items.append(item)
                owners.add(owner)
        return Page(items, response.get("LastEvaluatedKey"), frozenset(owners))

    def put_all(self, items: list[dict[str, Any]]) -> None:
        """Store these items whole, 25 a call (BatchWriteItem). Unconditional, and still
        idempotent: a move copies before the new home serves the range (switch-in comes
        after every copy step) and while the old home writes nothing of it (fence), so a
        page copied again writes the very same items again."""
        write_all(self._client, self.table, [{"PutRequest": {"Item": item}} for item in items])

    def delete(self, items: list[dict[str, Any]]) -> None:
        """Delete these items (by key); deleting one already gone changes nothing."""
        write_all(
            self._client,
            self.table,
            [{"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}} for item in items],
        )
