"""The Users table: profiles with their live connections, watchers, connect nonces.

Item layout (pk, sk):
- ("U#<userId>", "PROFILE"): public keys, `conns` (map connectionId -> connectedAt ms), lastSeen.
  Also `push` (devices) and `lastPushAt`, owned by dal/push_devices.py (kept in `extra`).
- ("U#<userId>", "SUB#<connectionId>"): that connection watches this user's presence.
- ("N#<userId>#<nonce>", "NONCE"): a connect nonce already used, until its TTL.

Keeping the live connections on the profile item means one GetItem answers both "does
the recipient exist" and "where is it connected", and one UpdateItem both records a
connection and tells whether the user just came online.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from messenger.contract import STALE_CONNECTION_SECONDS, SUBSCRIBER_INDEX
from messenger.dal.batch import get_all, write_all
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROFILE = "PROFILE"
SUB_PREFIX = "SUB#"


def user_key(user_id: str) -> str:
    return f"U#{user_id}"


@dataclass(frozen=True)
class Profile:
    user_id: str
    sign_key: str
    box_key: str
    created_at: int
    connections: dict[str, int] = field(default_factory=dict)  # connectionId -> connectedAt
    last_seen: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw attributes other features own

    def live_connections(self, now_ms: int) -> list[str]:
        """Connections that can still be open: API Gateway closes every socket after 2 h."""
        oldest = now_ms - STALE_CONNECTION_SECONDS * 1000
        return sorted(cid for cid, at in self.connections.items() if at >= oldest)

    def stale_connections(self, now_ms: int) -> list[str]:
        live = set(self.live_connections(now_ms))
        return sorted(cid for cid in self.connections if cid not in live)

    def is_online(self, now_ms: int) -> bool:
        return bool(self.live_connections(now_ms))


@dataclass(frozen=True)
class Subscription:
    watched: str
    watcher: str
    connection_id: str


class UserTaken(Exception):
    """Someone registered this userId first."""


class NonceReused(Exception):
    """This (userId, nonce) was accepted before."""


def _profile_from(item: dict[str, Any]) -> Profile:
    conns = item.get("conns", {}).get("M", {})
    known = {"pk", "sk", "userId", "signKey", "boxKey", "createdAt", "conns", "lastSeen"}
    return Profile(
        user_id=item["userId"]["S"],
        sign_key=item["signKey"]["S"],
        box_key=item["boxKey"]["S"],
        created_at=int(item["createdAt"]["N"]),
        connections={cid: int(value["N"]) for cid, value in conns.items()},
        last_seen=int(item["lastSeen"]["N"]) if "lastSeen" in item else None,
        extra={name: value for name, value in item.items() if name not in known},
    )


def profile_item(profile: Profile) -> dict[str, Any]:
    """The PROFILE item of a newly registered user (no connections yet)."""
    return {
        "pk": {"S": user_key(profile.user_id)},
        "sk": {"S": PROFILE},
        "userId": {"S": profile.user_id},
        "signKey": {"S": profile.sign_key},
        "boxKey": {"S": profile.box_key},
        "createdAt": {"N": str(profile.created_at)},
        "conns": {"M": {}},
    }


class Users:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # --- profiles -------------------------------------------------------------------

    def get_profile(self, user_id: str, *, consistent: bool = False) -> Profile | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return _profile_from(item) if item else None

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """Several profiles by key (BatchGetItem, 100 at a time); unknown users are absent."""
        keys = [
            {"pk": {"S": user_key(uid)}, "sk": {"S": PROFILE}} for uid in dict.fromkeys(user_ids)
        ]
        profiles = (_profile_from(item) for item in get_all(self._client, self._table, keys))
        return {profile.user_id: profile for profile in profiles}

    def _nonce_item(
        self, user_id: str, nonce: str, expires_at: int, attempt: str
    ) -> dict[str, Any]:
        return {
            "pk": {"S": f"N#{user_id}#{nonce}"},
            "sk": {"S": "NONCE"},
            "expiresAt": {"N": str(expires_at)},
            # The connection attempt that spent it: the SDK's retry of our own write (after
            # a timeout) is that attempt again; a replay is another connection.
            "attempt": {"S": attempt},
        }

    def register_with_nonce(
        self, profile: Profile, nonce: str, expires_at: int, attempt: str
    ) -> None:
        """Create the user and spend the nonce atomically: first come, first served.

        botocore gives the transaction an idempotency token that its retries reuse, so on
        DynamoDB a retry after a timeout does not find its own writes.
        """
        absent = "attribute_not_exists(pk)"
        try:
            with dynamodb_errors():
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": profile_item(profile),
                                "ConditionExpression": absent,
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": self._nonce_item(
                                    profile.user_id, nonce, expires_at, attempt
                                ),
                                "ConditionExpression": absent,
                            }
                        },
                    ]
                )
        except TransactionCanceled as canceled:
            failed = canceled.failed_conditions()
            if 0 in failed:
                raise UserTaken(profile.user_id) from None
            if 1 in failed:
                raise NonceReused(nonce) from None
            raise

    def spend_nonce(
        self, user_id: str, nonce: str, expires_at: int, now_s: int, attempt: str
    ) -> None:
        """Record a connect nonce once; a use by another attempt (while remembered) raises
        NonceReused. The same attempt again is the SDK retrying our own write: accepted."""
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=self._nonce_item(user_id, nonce, expires_at, attempt),
                    # An expired record the TTL sweeper has not removed yet no longer counts.
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expiresAt < :now OR attempt = :attempt"
                    ),
                    ExpressionAttributeValues={
                        ":now": {"N": str(now_s)},
                        ":attempt": {"S": attempt},
                    },
                )
        except ConditionFailed:
            raise NonceReused(nonce) from None

    # --- connections ----------------------------------------------------------------

    def add_connection(self, user_id: str, connection_id: str, connected_at: int) -> Profile:
        """Record a live connection; returns the profile as it is after the write."""
        response = self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
            UpdateExpression="SET conns.#cid = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#cid": connection_id},
            ExpressionAttributeValues={":at": {"N": str(connected_at)}},
            ReturnValues="ALL_NEW",
        )
        return _profile_from(response["Attributes"])

    def remove_connection(self, user_id: str, connection_id: str, now_ms: int) -> Profile | None:
        """Forget a connection and stamp lastSeen. None if it was already gone (idempotent).

        lastSeen is stamped on every close; it is only shown once no connection is left,
        and then it is the time the last one closed.
        """
        try:
            with dynamodb_errors():
                response = self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
                    UpdateExpression="REMOVE conns.#cid SET lastSeen = :now",
                    ConditionExpression="attribute_exists(conns.#cid)",
                    ExpressionAttributeNames={"#cid": connection_id},
                    ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                    ReturnValues="ALL_NEW",
                )
        except ConditionFailed:
            return None
        return _profile_from(response["Attributes"])

    def prune_connections(self, user_id: str, connection_ids: Iterable[str]) -> None:
        """Drop connections recorded so long ago that API Gateway has surely closed them."""
        ids = list(connection_ids)
        if not ids:
            return
        names = {f"#c{i}": cid for i, cid in enumerate(ids)}
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
            UpdateExpression="REMOVE " + ", ".join(f"conns.{name}" for name in names),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
        )

    # --- presence subscriptions -----------------------------------------------------

    def add_subscriptions(
        self, watcher: str, connection_id: str, watched: Iterable[str], expires_at: int
    ) -> None:
        requests: list[Any] = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": user_key(target)},
                        "sk": {"S": SUB_PREFIX + connection_id},
                        "subConn": {"S": connection_id},
                        "watcher": {"S": watcher},
                        "expiresAt": {"N": str(expires_at)},
                    }
                }
            }
            for target in dict.fromkeys(watched)
        ]
        write_all(self._client, self._table, requests)

    def watchers_of(self, user_id: str, now_s: int) -> list[Subscription]:
        """Connections subscribed to this user's presence (paginated Query, no Scan)."""
        found: list[Subscription] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
            "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":sub": {"S": SUB_PREFIX},
                ":now": {"N": str(now_s)},
            },
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                found.append(
                    Subscription(
                        watched=user_id,
                        watcher=item["watcher"]["S"],
                        connection_id=item["subConn"]["S"],
                    )
                )
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def drop_subscriptions_of(self, connection_id: str) -> None:
        """Delete every subscription a closed connection held (GSI Query + BatchWriteItem)."""
        keys: list[Any] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": SUBSCRIBER_INDEX,
            "KeyConditionExpression": "subConn = :c",
            "ExpressionAttributeValues": {":c": {"S": connection_id}},
        }
        while True:
            response = self._client.query(**kwargs)
            keys += [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        write_all(self._client, self._table, [{"DeleteRequest": {"Key": key}} for key in keys])

    def drop_subscription(self, subscription: Subscription) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key={
                "pk": {"S": user_key(subscription.watched)},
                "sk": {"S": SUB_PREFIX + subscription.connection_id},
            },
        )
