"""The Users table: profiles with their live connections, presence, connect nonces.

Item layout (pk, sk):
- ("U#<userId>", "PROFILE"): public keys, `conns` (map connectionId -> connectedAt ms),
  lastSeen, and who may see the user's presence: `vis` (everyone, contacts, nobody; absent
  is everyone), `visGen` (the generation of the contact list in effect), `visDigest` (of
  the setting, so that sending the same again writes nothing), `visCount`.
  Also `push` (devices) and `lastPushAt`, owned by dal/push_devices.py (kept in `extra`).
- ("U#<userId>", "WATCH#<connectionId>"): `watching`, every user that connection asked to
  watch (the subscription cap counts them; its $disconnect deletes what they name).
- ("U#<userId>", "SUB#<connectionId>"): that connection watches this user's presence.
- ("U#<userId>", "WATCH#<watcherCell>#<watcherId>"): a user of another cell watches this
  user's presence from some connection (`watcherCell`, `watcher`, expiresAt): that cell is
  told of changes (docs/scale.md). Connection ids hold no '#', so these never meet the
  watch lists above; every read of them names `watcherCell`.
- ("U#<userId>", "SEE#<visGen>#<contactId>"): the contact may see this user's presence
  (with `vis` contacts, for the generation in effect).
- ("N#<userId>#<nonce>", "NONCE"): a connect nonce already used, until its TTL.

Keeping the live connections on the profile item means one GetItem answers both "does
the recipient exist" and "where is it connected", and one UpdateItem both records a
connection and tells whether the user just came online.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from messenger.contract import STALE_CONNECTION_SECONDS
from messenger.dal.batch import get_all, write_all
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger_protocol.limits import MAX_SUBSCRIPTIONS_PER_CONNECTION
from messenger_protocol.names import PresenceVisibility

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROFILE = "PROFILE"
SUB_PREFIX = "SUB#"
WATCH_PREFIX = "WATCH#"
SEE_PREFIX = "SEE#"
TRANSACTION_LIMIT = 100
TRANSACTION_ATTEMPTS = 4


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
    visibility: PresenceVisibility = PresenceVisibility.EVERYONE
    visibility_generation: str | None = None
    visibility_digest: str | None = None
    contact_count: int = 0
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


class UserTaken(Exception):
    """Someone registered this userId first."""


class NonceReused(Exception):
    """This (userId, nonce) was accepted before."""


class RegistrationsExhausted(Exception):
    """The source address registered as many users as it may this hour."""


class SubscriptionCapReached(Exception):
    """The connection would watch more users than MAX_SUBSCRIPTIONS_PER_CONNECTION."""


class ConnectionClosed(Exception):
    """The connection is no longer recorded on its user's profile."""


class VisibilityOvertaken(Exception):
    """A newer presence visibility was set meanwhile; this one never took effect."""


_KNOWN = {
    "pk",
    "sk",
    "userId",
    "signKey",
    "boxKey",
    "createdAt",
    "conns",
    "lastSeen",
    "vis",
    "visGen",
    "visDigest",
    "visCount",
}


def _profile_from(item: dict[str, Any]) -> Profile:
    conns = item.get("conns", {}).get("M", {})
    return Profile(
        user_id=item["userId"]["S"],
        sign_key=item["signKey"]["S"],
        box_key=item["boxKey"]["S"],
        created_at=int(item["createdAt"]["N"]),
        connections={cid: int(value["N"]) for cid, value in conns.items()},
        last_seen=int(item["lastSeen"]["N"]) if "lastSeen" in item else None,
        visibility=PresenceVisibility(item["vis"]["S"])
        if "vis" in item
        else PresenceVisibility.EVERYONE,
        visibility_generation=item["visGen"]["S"] if "visGen" in item else None,
        visibility_digest=item["visDigest"]["S"] if "visDigest" in item else None,
        contact_count=int(item["visCount"]["N"]) if "visCount" in item else 0,
        extra={name: value for name, value in item.items() if name not in _KNOWN},
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
        profiles = (_profile_from(item) for item in self._batch_get(keys))
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
        self,
        profile: Profile,
        nonce: str,
        expires_at: int,
        attempt: str,
        registration_count: dict[str, Any],
    ) -> None:
        """Create the user, spend the nonce and count the registration against its source,
        atomically: first come, first served, and nothing written when any part is refused.

        `registration_count` is the counter's transaction action (dal.rate_limits). botocore
        gives the transaction an idempotency token that its retries reuse, so on DynamoDB a
        retry after a timeout does not find its own writes.
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
                        registration_count,  # type: ignore[list-item]
                    ]
                )
        except TransactionCanceled as canceled:
            failed = canceled.failed_conditions()
            if 0 in failed:
                raise UserTaken(profile.user_id) from None
            if 1 in failed:
                raise NonceReused(nonce) from None
            if 2 in failed:
                raise RegistrationsExhausted(profile.user_id) from None
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

    def forget_connection(self, user_id: str, connection_id: str) -> None:
        """Undo add_connection for a $connect that failed: no lastSeen, no presence change."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
            UpdateExpression="REMOVE conns.#cid",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#cid": connection_id},
        )

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
        self,
        watcher: str,
        connection_id: str,
        asked: Sequence[str],
        recorded: Sequence[str],
        expires_at: int,
    ) -> None:
        """The connection watches `asked` (each counts toward its cap); a subscription is
        written for each of `recorded` (those it may watch).

        Every write is a transaction that holds only while the connection is still
        recorded on the watcher's profile, and the first one adds all of `asked` to the
        connection's watch list. So a subscription either lands in the watch list that
        the connection's $disconnect deletes from, or is not written at all: a subscribe
        racing a $disconnect leaves nothing behind. Raises SubscriptionCapReached
        (nothing written) or ConnectionClosed.
        """
        asked = list(dict.fromkeys(asked))
        pending = list(dict.fromkeys(recorded))
        # First as if every asked user were new. If that meets the cap, the failed
        # condition hands back the watch list: count again, only the users it lacks.
        room = MAX_SUBSCRIPTIONS_PER_CONNECTION - len(asked)
        for counted_exactly in (False, True):
            chunk = pending[: TRANSACTION_LIMIT - 2]
            try:
                self._transact(
                    [
                        self._still_connected(watcher, connection_id),
                        self._watch(watcher, connection_id, asked, room, expires_at),
                        *(self._subscription(t, watcher, connection_id, expires_at) for t in chunk),
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
            chunk = pending[: TRANSACTION_LIMIT - 1]
            try:
                self._transact(
                    [
                        self._still_connected(watcher, connection_id),
                        *(self._subscription(t, watcher, connection_id, expires_at) for t in chunk),
                    ]
                )
            except TransactionCanceled as canceled:
                if 0 in canceled.failed_conditions():
                    raise ConnectionClosed(connection_id) from None
                raise
            pending = pending[len(chunk) :]

    def _still_connected(self, watcher: str, connection_id: str) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": {"pk": {"S": user_key(watcher)}, "sk": {"S": PROFILE}},
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
                "Key": {"pk": {"S": user_key(watcher)}, "sk": {"S": WATCH_PREFIX + connection_id}},
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
                "Item": {
                    "pk": {"S": user_key(watched)},
                    "sk": {"S": SUB_PREFIX + connection_id},
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
            Key={"pk": {"S": user_key(watcher)}, "sk": {"S": WATCH_PREFIX + connection_id}},
            ConsistentRead=True,
        )
        return _watching(response.get("Item")) or set()

    def forget_watches(self, watcher: str, connection_id: str) -> int:
        """Delete a closed connection's watch list and every subscription it names; how
        many. Bounded: at most MAX_SUBSCRIPTIONS_PER_CONNECTION."""
        response = self._client.delete_item(
            TableName=self._table,
            Key={"pk": {"S": user_key(watcher)}, "sk": {"S": WATCH_PREFIX + connection_id}},
            ReturnValues="ALL_OLD",
        )
        watched = response.get("Attributes", {}).get("watching", {}).get("SS", [])
        self._batch_write(
            [
                {
                    "DeleteRequest": {
                        "Key": {
                            "pk": {"S": user_key(target)},
                            "sk": {"S": SUB_PREFIX + connection_id},
                        }
                    }
                }
                for target in watched
            ]
        )
        return len(watched)

    def watchers_of(self, user_id: str, now_s: int) -> Iterator[list[Subscription]]:
        """Connections subscribed to this user's presence, a page at a time (Query)."""
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
            yield [
                Subscription(
                    watched=user_id,
                    watcher=item["watcher"]["S"],
                    connection_id=item["sk"]["S"][len(SUB_PREFIX) :],
                )
                for item in response.get("Items", [])
            ]
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def drop_subscription(self, subscription: Subscription) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key={
                "pk": {"S": user_key(subscription.watched)},
                "sk": {"S": SUB_PREFIX + subscription.connection_id},
            },
        )

    def drop_subscriptions(self, connection_id: str, watched: Iterable[str]) -> None:
        """Delete the connection's subscriptions to these users (one batch)."""
        self._batch_write(
            [
                {
                    "DeleteRequest": {
                        "Key": {
                            "pk": {"S": user_key(target)},
                            "sk": {"S": SUB_PREFIX + connection_id},
                        }
                    }
                }
                for target in dict.fromkeys(watched)
            ]
        )

    # --- interests of other cells -------------------------------------------------------

    def add_interests(self, interests: Sequence[Interest], expires_at: int) -> None:
        """Record (or renew) that these users of other cells watch users of this one."""
        self._batch_write(
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
            ]
        )

    def interests_in(self, user_id: str, now_s: int) -> Iterator[list[Interest]]:
        """The unexpired interests of other cells in this user, a page at a time (Query)."""
        kwargs: dict[str, Any] = {
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
        while True:
            response = self._client.query(**kwargs)
            yield [
                Interest(user_id, item["watcherCell"]["S"], item["watcher"]["S"])
                for item in response.get("Items", [])
            ]
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def drop_interests(self, interests: Iterable[Interest]) -> None:
        self._batch_write([{"DeleteRequest": {"Key": interest.key}} for interest in interests])

    # --- presence visibility ----------------------------------------------------------

    def contacts_among(self, owners: Iterable[Profile], candidate: str) -> set[str]:
        """Which of these users (with the contacts visibility) list `candidate`."""
        keys = [
            _contact_key(owner.user_id, owner.visibility_generation, candidate)
            for owner in owners
            if owner.visibility is PresenceVisibility.CONTACTS and owner.visibility_generation
        ]
        return {_owner_of(item) for item in self._batch_get(keys)}

    def contacts_of_among(self, owner: Profile, candidates: Iterable[str]) -> set[str]:
        """Which of `candidates` the owner (with the contacts visibility) lists."""
        generation = owner.visibility_generation
        if owner.visibility is not PresenceVisibility.CONTACTS or not generation:
            return set()
        keys = [_contact_key(owner.user_id, generation, c) for c in dict.fromkeys(candidates)]
        prefix = f"{SEE_PREFIX}{generation}#"
        return {item["sk"]["S"][len(prefix) :] for item in self._batch_get(keys)}

    def set_visibility(
        self,
        user_id: str,
        visibility: PresenceVisibility,
        contacts: Sequence[str],
        generation: str,
        digest: str,
    ) -> None:
        """Put a new presence visibility in effect, replacing the previous contact list.

        The contacts of the new generation are written first; one conditional update of
        the profile then switches to it, unless a newer generation is in effect already
        (VisibilityOvertaken, and the written contacts are removed again). Generations
        sort by time, so the newest setting wins whatever order the calls finish in.
        """
        self._batch_write(
            [
                {"PutRequest": {"Item": _contact_key(user_id, generation, contact)}}
                for contact in contacts
            ]
        )
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
                    UpdateExpression=(
                        "SET vis = :vis, visGen = :gen, visDigest = :digest, visCount = :count"
                    ),
                    ConditionExpression=(
                        "attribute_exists(pk) AND (attribute_not_exists(visGen) OR visGen < :gen)"
                    ),
                    ExpressionAttributeValues={
                        ":vis": {"S": visibility.value},
                        ":gen": {"S": generation},
                        ":digest": {"S": digest},
                        ":count": {"N": str(len(contacts))},
                    },
                )
        except ConditionFailed:
            self._delete_contacts(
                user_id, f"{SEE_PREFIX}{generation}#", f"{SEE_PREFIX}{generation}$"
            )
            raise VisibilityOvertaken(user_id) from None
        # Every older generation is out of effect now.
        self._delete_contacts(user_id, SEE_PREFIX, f"{SEE_PREFIX}{generation}")

    def _delete_contacts(self, user_id: str, low: str, high: str) -> None:
        keys: list[Any] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "ProjectionExpression": "pk, sk",
        }
        while True:
            response = self._client.query(**kwargs)
            keys += [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])

    # --- batches ----------------------------------------------------------------------

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return get_all(self._client, self._table, keys)

    def _batch_write(self, requests: list[Any]) -> None:
        write_all(self._client, self._table, requests)


def _watching(item: dict[str, Any] | None) -> set[str] | None:
    """The users a watch list item names; None without the item."""
    if item is None:
        return None
    return set(item.get("watching", {}).get("SS", []))


def _contact_key(owner: str, generation: str, contact: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(owner)}, "sk": {"S": f"{SEE_PREFIX}{generation}#{contact}"}}


def _owner_of(item: dict[str, Any]) -> str:
    return str(item["pk"]["S"])[len("U#") :]
