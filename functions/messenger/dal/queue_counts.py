"""How many messages wait in each user's queue, in all and from each sender: the counters
behind the queue caps (QUEUE_FULL, docs/protocol.md §2), kept in the Limits table.

One item per recipient, ("U#<recipient>", "CAPS"):
- `n`: the messages queued for the recipient;
- `s`: a map from a sender's tag (a short digest of its user id, `sender_tag`) to how many
  of them are that sender's;
- `expiresAt`: the expiry of the newest message counted.
Every message lives as long as the next (one TTL), so once `expiresAt` is past, every
message counted has expired, and the counter starts again from nothing: a message that
expired without being acknowledged is released that way, and a count off by a message (a
crash between the count and the store) heals within one TTL of its last message.

Both caps sit in one item so that a message is counted in, and an `ack` counts its
messages out, with one UpdateItem each (two counters took four WRU a message). The check
is against the stored values at the moment of the write, so concurrent sends never pass
a cap; a count refused writes nothing. Tags are 48 bits: two senders that shared one
would share one sender's cap (stricter, never looser). A sender's entry stays, at 0, once
its messages are gone, until PRUNE_AT such entries are removed together (one more write
in many acks), so the item stays as small as the senders with messages waiting.
No Query counts a queue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.profiles import user_key
from messenger_protocol.encoding import b64url_encode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNTS_SK = "CAPS"
# Entries at 0 removed together, in one write: they never cost more than ~PRUNE_AT * 14
# bytes of the item (a fraction of a write unit).
PRUNE_AT = 16


class Cap(Enum):
    """The cap a message would pass."""

    QUEUE = "queue"
    SENDER = "sender"


@dataclass(frozen=True)
class Counted:
    """A message counted in: whom to count out again on an undo."""

    recipient: str
    tag: str


def sender_tag(sender: str) -> str:
    """A sender's key in the recipient's map: 8 characters, whatever the user id's length."""
    return b64url_encode(hashlib.blake2b(sender.encode(), digest_size=6).digest())


def count_key(recipient: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(recipient)}, "sk": {"S": COUNTS_SK}}


class QueueCounts:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count(
        self,
        recipient: str,
        sender: str,
        per_queue: int,
        per_sender: int,
        now_s: int,
        expires_at: int,
    ) -> Counted | Cap:
        """Count one more message from `sender` in the recipient's queue; the Cap it would
        pass instead (nothing written). One UpdateItem while the counter is live."""
        tag = sender_tag(sender)
        names = {"#t": tag}
        values = {":one": {"N": "1"}, ":now": {"N": str(now_s)}, ":exp": {"N": str(expires_at)}}
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=count_key(recipient),
                    UpdateExpression=(
                        "SET n = n + :one, s.#t = if_not_exists(s.#t, :zero) + :one, "
                        "expiresAt = :exp"
                    ),
                    ConditionExpression=(
                        "expiresAt >= :now AND n < :cap "
                        "AND (attribute_not_exists(s.#t) OR s.#t < :scap)"
                    ),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values
                    | {
                        ":zero": {"N": "0"},
                        ":cap": {"N": str(per_queue)},
                        ":scap": {"N": str(per_sender)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return Counted(recipient, tag)
        except ConditionFailed as failed:
            held = failed.item
        if held and _number(held, "expiresAt") >= now_s:
            # Live, so one of the caps is full (the item as it was when the check failed).
            return Cap.QUEUE if _number(held, "n") >= per_queue else Cap.SENDER
        # No live counter: this message is the first of a new one.
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=count_key(recipient),
                    UpdateExpression="SET n = :one, s = :s, expiresAt = :exp",
                    ConditionExpression="attribute_not_exists(n) OR expiresAt < :now",
                    ExpressionAttributeValues=values | {":s": {"M": {tag: {"N": "1"}}}},
                )
            return Counted(recipient, tag)
        except ConditionFailed:
            # Another message started it meanwhile: count into that one.
            return self.count(recipient, sender, per_queue, per_sender, now_s, expires_at)

    def forget(self, recipient: str) -> None:
        """Start a queue's counter afresh (its queue was deleted): marked expired, so the
        next message counted starts it again. One UpdateItem; nothing for no counter."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=count_key(recipient),
                    UpdateExpression="SET expiresAt = :gone",
                    ConditionExpression="attribute_exists(n)",
                    ExpressionAttributeValues={":gone": {"N": "0"}},
                )
        except ConditionFailed:
            return

    def undo(self, counted: Counted) -> None:
        """Take back one `count` (a resend, or a message not stored after all); a counter
        that started again since (an expiry) is left alone."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=count_key(counted.recipient),
                    UpdateExpression="SET n = n - :one, s.#t = s.#t - :one",
                    ConditionExpression="n >= :one AND s.#t >= :one",
                    ExpressionAttributeNames={"#t": counted.tag},
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
        except ConditionFailed:
            pass

    def release(self, recipient: str, by_sender: Mapping[str, int]) -> None:
        """Count out messages that left the recipient's queue (acknowledged), in one write.
        A counter that counts fewer (it started again after an expiry) is brought down as
        far as it goes, never below zero."""
        tags: dict[str, int] = {}
        for sender, released in by_sender.items():
            tag = sender_tag(sender)
            tags[tag] = tags.get(tag, 0) + released
        if not tags:
            return
        try:
            new = self._subtract(recipient, tags, sum(tags.values()))
        except ConditionFailed as failed:
            held = failed.item
            if not held or "s" not in held:
                return
            counts = held["s"]["M"]
            fewer = {tag: min(k, int(counts[tag]["N"])) for tag, k in tags.items() if tag in counts}
            fewer = {tag: k for tag, k in fewer.items() if k > 0}
            if not fewer:
                return
            try:
                new = self._subtract(recipient, fewer, min(sum(fewer.values()), _number(held, "n")))
            except ConditionFailed:
                return  # changed meanwhile: what is left heals when the counter expires
        self._prune(recipient, new)

    def _subtract(self, recipient: str, tags: Mapping[str, int], total: int) -> dict[str, Any]:
        names = {f"#t{i}": tag for i, tag in enumerate(tags)}
        values = {f":k{i}": {"N": str(k)} for i, k in enumerate(tags.values())}
        updates = ", ".join(f"s.#t{i} = s.#t{i} - :k{i}" for i in range(len(tags)))
        conditions = " AND ".join(f"s.#t{i} >= :k{i}" for i in range(len(tags)))
        with dynamodb_errors():
            answer = self._client.update_item(
                TableName=self._table,
                Key=count_key(recipient),
                UpdateExpression=f"SET n = n - :total, {updates}",
                ConditionExpression=f"n >= :total AND {conditions}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values | {":total": {"N": str(total)}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return answer.get("Attributes", {})

    def _prune(self, recipient: str, item: Mapping[str, Any]) -> None:
        """Remove the senders' entries at 0 once there are PRUNE_AT of them, if they are
        still at 0 (a sender counted meanwhile keeps its entry)."""
        zeros = [tag for tag, n in item.get("s", {}).get("M", {}).items() if n["N"] == "0"]
        if len(zeros) < PRUNE_AT:
            return
        names = {f"#t{i}": tag for i, tag in enumerate(zeros)}
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=count_key(recipient),
                    UpdateExpression="REMOVE " + ", ".join(f"s.{name}" for name in names),
                    ConditionExpression=" AND ".join(f"s.{name} = :zero" for name in names),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":zero": {"N": "0"}},
                )
        except ConditionFailed:
            pass


def _number(item: Mapping[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0
