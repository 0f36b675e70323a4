"""Who watches whose presence, in the Users table: connections' watch lists, their
subscriptions, and the interests of other cells.

Item layout (pk, sk):
- ("U#<userId>", "WATCH#<connectionId>"): `watching`, every user that connection asked to
  watch (the subscription cap counts them; its $disconnect deletes what they name).
- ("U#<userId>", "SUB#<connectionId>"): that connection watches this user's presence.
- ("U#<userId>", "WATCH#<watcherCell>#<watcherId>"): a user of another cell watches this
  user's presence from some connection (`watcherCell`, `watcher`, expiresAt): that cell is
  told of changes (docs/scale.md). Connection ids hold no '#', so these never meet the
  watch lists above; every read of them names `watcherCell`.
- ("U#<userId>", "WATCHERS"): how many SUB items this user has, one number per hour of
  their `expiresAt` (`b<hour>`): a subscription adds 1 to the hour it expires in and its
  deletion takes it back; an hour past counts no more, so subscriptions swept up by TTL
  are released too (at most an hour late). The cap (MAX_WATCHERS_PER_USER) is checked
  before the first write; concurrent subscribes may pass it by their number
  (docs/limits.md).
Every item carries `expiresAt`, which only sweeps up after a lost $disconnect.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.dal.batch import get_all, query_pages, write_all
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger.dal.profiles import profile_key, user_key
from messenger_protocol.limits import MAX_SUBSCRIPTIONS_PER_CONNECTION, MAX_WATCHERS_PER_USER

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SUB_PREFIX = "SUB#"
WATCH_PREFIX = "WATCH#"
WATCHER_COUNT = "WATCHERS"
# Watchers are counted by the hour their subscriptions expire in.
WATCHER_COUNT_PERIOD_SECONDS = 3600
TRANSACTION_LIMIT = 100
TRANSACTION_ATTEMPTS = 4


@dataclass(frozen=True)
class Subscription:
    watched: str
    watcher: str
    connection_id: str

    @property
    def key(self) -> dict[str, Any]:
        return _subscription_key(self.watched, self.connection_id)


@dataclass(frozen=True)
class Interest:
    """A user of another cell watches `watched` (from one or more of its connections)."""

    watched: str
    cell: str
    watcher: str

    @property
    def key(self) -> dict[str, Any]:
        return {
            "pk": {"S": user_key(self.watched)},
            "sk": {"S": f"{WATCH_PREFIX}{self.cell}#{self.watcher}"},
        }


@dataclass(frozen=True)
class _Recorded:
    watched: str
    new: bool  # not yet watched by this connection: counted on the user's watchers


def _chunk(pending: list[_Recorded], room: int) -> list[_Recorded]:
    """As many subscriptions from the front as fit `room` transaction items."""
    chunk: list[_Recorded] = []
    for recorded in pending:
        room -= 2 if recorded.new else 1
        if room < 0:
            break
        chunk.append(recorded)
    return chunk


class SubscriptionCapReached(Exception):
    """The connection would watch more users than MAX_SUBSCRIPTIONS_PER_CONNECTION."""


class WatcherCapReached(Exception):
    """A user asked for has MAX_WATCHERS_PER_USER watchers in this cell already."""

    def __init__(self, watched: list[str]) -> None:
        super().__init__(", ".join(watched))
        self.watched = watched


class ConnectionClosed(Exception):
    """The connection is no longer recorded on its user's profile."""


def _subscription_key(watched: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(watched)}, "sk": {"S": SUB_PREFIX + connection_id}}


def _watch_list_key(watcher: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(watcher)}, "sk": {"S": WATCH_PREFIX + connection_id}}


def _watcher_count_key(watched: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(watched)}, "sk": {"S": WATCHER_COUNT}}


def _period(expires_at: int) -> int:
    return expires_at // WATCHER_COUNT_PERIOD_SECONDS


def _live_watchers(item: dict[str, Any], now_s: int) -> int:
    """The subscriptions a counter item counts whose hour has not passed."""
    return sum(
        int(value["N"])
        for name, value in item.items()
        if name.startswith("b") and (int(name[1:]) + 1) * WATCHER_COUNT_PERIOD_SECONDS > now_s
    )


def _stale_periods(item: dict[str, Any], now_s: int) -> list[str]:
    return [
        name
        for name in item
        if name.startswith("b") and (int(name[1:]) + 1) * WATCHER_COUNT_PERIOD_SECONDS <= now_s
    ]


def _watching(item: dict[str, Any] | None) -> set[str] | None:
    """The users a watch list item names; None without the item."""
    if item is None:
        return None
    return set(item.get("watching", {}).get("SS", []))


class Subscriptions:
    """Presence subscriptions of this cell's connections, and other cells' interests."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # --- a connection's subscriptions ---------------------------------------------------

    def add_subscriptions(
        self,
        watcher: str,
        connection_id: str,
        asked: Sequence[str],
        recorded: Sequence[str],
        now_s: int,
        expires_at: int,
    ) -> None:
        """The connection watches `asked` (each counts toward its cap); a subscription is
        written for each of `recorded` (those it may watch), and counted on that user's
        watcher count, which must have room for it (MAX_WATCHERS_PER_USER).

        Every write is a transaction that holds only while the connection is still
        recorded on the watcher's profile, and the first one adds all of `asked` to the
        connection's watch list. So a subscription either lands in the watch list that
        the connection's $disconnect deletes from, or is not written at all: a subscribe
        racing a $disconnect leaves nothing behind. Raises SubscriptionCapReached or
        WatcherCapReached (nothing written), or ConnectionClosed.
        """
        asked = list(dict.fromkeys(asked))
        counted = self._count_new(connection_id, list(dict.fromkeys(recorded)), now_s)
        pending = [_Recorded(watched, watched in counted) for watched in dict.fromkeys(recorded)]
        # First as if every asked user were new. If that meets the cap, the failed
        # condition hands back the watch list: count again, only the users it lacks.
        room = MAX_SUBSCRIPTIONS_PER_CONNECTION - len(asked)
        for counted_exactly in (False, True):
            chunk = _chunk(pending, TRANSACTION_LIMIT - 2)
            try:
                self._transact(
                    [
                        self._still_connected(watcher, connection_id),
                        self._watch(watcher, connection_id, asked, room, expires_at),
                        *self._subscriptions(chunk, watcher, connection_id, counted, expires_at),
                    ]
                )
            except TransactionCanceled as canceled:
                failed = canceled.failed_conditions()
                if 0 in failed:
                    raise ConnectionClosed(connection_id) from None
                if 1 not in failed:
                    raise
                watching = _watching(canceled.items[1])
                if watching is None:  # a backend that does not return it: read it
                    watching = self.watched_by(watcher, connection_id)
                room = MAX_SUBSCRIPTIONS_PER_CONNECTION - len(set(asked) - watching)
                if counted_exactly or len(watching) > room:
                    raise SubscriptionCapReached(connection_id) from None
                continue
            pending = pending[len(chunk) :]
            break
        while pending:
            chunk = _chunk(pending, TRANSACTION_LIMIT - 1)
            try:
                self._transact(
                    [
                        self._still_connected(watcher, connection_id),
                        *self._subscriptions(chunk, watcher, connection_id, counted, expires_at),
                    ]
                )
            except TransactionCanceled as canceled:
                if 0 in canceled.failed_conditions():
                    raise ConnectionClosed(connection_id) from None
                raise
            pending = pending[len(chunk) :]

    def _count_new(
        self, connection_id: str, recorded: list[str], now_s: int
    ) -> dict[str, dict[str, Any]]:
        """The counter items of the users the connection does not watch yet (empty for a
        user never counted); raises WatcherCapReached if one of them has no room."""
        if not recorded:
            return {}
        keys = [_subscription_key(watched, connection_id) for watched in recorded]
        keys += [_watcher_count_key(watched) for watched in recorded]
        found = get_all(self._client, self._table, keys, consistent=True)
        subscribed = {item["pk"]["S"] for item in found if item["sk"]["S"].startswith(SUB_PREFIX)}
        counters = {item["pk"]["S"]: item for item in found if item["sk"]["S"] == WATCHER_COUNT}
        new = {
            watched: counters.get(user_key(watched), {})
            for watched in recorded
            if user_key(watched) not in subscribed
        }
        full = [
            watched
            for watched, item in new.items()
            if _live_watchers(item, now_s) >= MAX_WATCHERS_PER_USER
        ]
        if full:
            raise WatcherCapReached(full)
        return {watched: {"stale": _stale_periods(item, now_s)} for watched, item in new.items()}

    def _subscriptions(
        self,
        chunk: list[_Recorded],
        watcher: str,
        connection_id: str,
        counted: dict[str, dict[str, Any]],
        expires_at: int,
    ) -> Iterator[dict[str, Any]]:
        """The writes for a chunk: each subscription, and its count if it is new."""
        for recorded in chunk:
            yield self._subscription(recorded.watched, watcher, connection_id, expires_at)
            if recorded.new:
                yield self._count(recorded.watched, counted[recorded.watched], expires_at)

    def _count(self, watched: str, counter: dict[str, Any], expires_at: int) -> dict[str, Any]:
        """Add one to the hour the subscription expires in (and drop hours past)."""
        names = {"#b": f"b{_period(expires_at)}"}
        names |= {f"#s{n}": stale for n, stale in enumerate(counter["stale"])}
        remove = (
            f" REMOVE {', '.join(n for n in names if n.startswith('#s'))}" if len(names) > 1 else ""
        )
        return {
            "Update": {
                "TableName": self._table,
                "Key": _watcher_count_key(watched),
                "UpdateExpression": "ADD #b :one SET expiresAt = :exp" + remove,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":exp": {"N": str((_period(expires_at) + 1) * WATCHER_COUNT_PERIOD_SECONDS)},
                },
            }
        }

    def _uncount(self, watched: str, expires_at: int) -> None:
        """Take back one subscription from the hour it was counted in."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=_watcher_count_key(watched),
                    UpdateExpression="ADD #b :minus",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#b": f"b{_period(expires_at)}"},
                    ExpressionAttributeValues={":minus": {"N": "-1"}},
                )
        except ConditionFailed:
            pass  # the counter expired with every hour it counted

    def _still_connected(self, watcher: str, connection_id: str) -> dict[str, Any]:
        """Holds while the connection is recorded on the watcher's profile."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": profile_key(watcher),
                "ConditionExpression": "attribute_exists(conns.#cid)",
                "ExpressionAttributeNames": {"#cid": connection_id},
            }
        }

    def _watch(
        self, watcher: str, connection_id: str, asked: list[str], room: int, expires_at: int
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _watch_list_key(watcher, connection_id),
                "UpdateExpression": "ADD watching :asked SET expiresAt = :exp",
                # Sets only grow while the connection lives: a size within `room` now keeps
                # the union within the cap, whatever was added concurrently.
                "ConditionExpression": "attribute_not_exists(watching) OR size(watching) <= :room",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                "ExpressionAttributeValues": {
                    ":asked": {"SS": asked},
                    ":room": {"N": str(room)},
                    ":exp": {"N": str(expires_at)},
                },
            }
        }

    def _subscription(
        self, watched: str, watcher: str, connection_id: str, expires_at: int
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _subscription_key(watched, connection_id)
                | {
                    "watcher": {"S": watcher},
                    # Only sweeps up after a lost $disconnect.
                    "expiresAt": {"N": str(expires_at)},
                },
            }
        }

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        """TransactWriteItems, tried again (briefly) when another request held an item."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with dynamodb_errors():
                    self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
                return
            except TransactionCanceled as canceled:
                if not canceled.conflicted or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * 2**attempt)

    def watched_by(self, watcher: str, connection_id: str) -> set[str]:
        """Every user the connection asked to watch."""
        response = self._client.get_item(
            TableName=self._table,
            Key=_watch_list_key(watcher, connection_id),
            ConsistentRead=True,
        )
        return _watching(response.get("Item")) or set()

    def forget_watches(self, watcher: str, connection_id: str) -> int:
        """Delete a closed connection's watch list and every subscription it names; how
        many. Bounded: at most MAX_SUBSCRIPTIONS_PER_CONNECTION."""
        response = self._client.delete_item(
            TableName=self._table,
            Key=_watch_list_key(watcher, connection_id),
            ReturnValues="ALL_OLD",
        )
        watched = response.get("Attributes", {}).get("watching", {}).get("SS", [])
        self.drop_subscriptions(connection_id, watched)
        return len(watched)

    def watchers_of(self, user_id: str, now_s: int) -> Iterator[list[Subscription]]:
        """Connections subscribed to this user's presence, a page at a time (Query)."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
            "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":sub": {"S": SUB_PREFIX},
                ":now": {"N": str(now_s)},
            },
        }
        for items in query_pages(self._client, query):
            yield [
                Subscription(
                    watched=user_id,
                    watcher=item["watcher"]["S"],
                    connection_id=item["sk"]["S"][len(SUB_PREFIX) :],
                )
                for item in items
            ]

    def drop_subscription(self, subscription: Subscription) -> None:
        """Delete one subscription and release its count."""
        response = self._client.delete_item(
            TableName=self._table, Key=subscription.key, ReturnValues="ALL_OLD"
        )
        old = response.get("Attributes")
        if old is not None:
            self._uncount(subscription.watched, int(old["expiresAt"]["N"]))

    def drop_subscriptions(self, connection_id: str, watched: Iterable[str]) -> None:
        """Delete the connection's subscriptions to these users (batches) and release
        their counts (one UpdateItem each)."""
        keys = [_subscription_key(target, connection_id) for target in dict.fromkeys(watched)]
        found = get_all(self._client, self._table, keys, projection="pk, expiresAt")
        write_all(self._client, self._table, [{"DeleteRequest": {"Key": key}} for key in keys])
        for item in found:
            watched_key = item["pk"]["S"]
            self._uncount(watched_key[len(user_key("")) :], int(item["expiresAt"]["N"]))

    # --- interests of other cells -------------------------------------------------------

    def add_interests(self, interests: Sequence[Interest], expires_at: int) -> None:
        """Record (or renew) that these users of other cells watch users of this one."""
        write_all(
            self._client,
            self._table,
            [
                {
                    "PutRequest": {
                        "Item": interest.key
                        | {
                            "watcherCell": {"S": interest.cell},
                            "watcher": {"S": interest.watcher},
                            "expiresAt": {"N": str(expires_at)},
                        }
                    }
                }
                for interest in dict.fromkeys(interests)
            ],
        )

    def interests_in(self, user_id: str, now_s: int) -> Iterator[list[Interest]]:
        """The unexpired interests of other cells in this user, a page at a time (Query)."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :watch)",
            # The user's own watch lists share the prefix and carry no watcherCell.
            "FilterExpression": "expiresAt > :now AND attribute_exists(watcherCell)",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":watch": {"S": WATCH_PREFIX},
                ":now": {"N": str(now_s)},
            },
        }
        for items in query_pages(self._client, query):
            yield [
                Interest(user_id, item["watcherCell"]["S"], item["watcher"]["S"]) for item in items
            ]

    def drop_interests(self, interests: Iterable[Interest]) -> None:
        write_all(
            self._client,
            self._table,
            [{"DeleteRequest": {"Key": interest.key}} for interest in interests],
        )
