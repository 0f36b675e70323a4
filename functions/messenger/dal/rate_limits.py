"""The Limits table: rate-limit buckets and registration counters, nothing else.

Item layout (pk, sk):
- ("U#<userId>", "RATE#<action>"), and ("U#<userId>", "RATE#<action>#<otherUserId>") for
  limits per pair: a leaky bucket kept as GCRA's "theoretical arrival time" (`tat`, epoch
  ms). Each frame let through pushes `tat` one leak interval further; a user may run
  ahead of the clock by at most the burst. The item expires once the bucket has drained.
- ("IP#<source>", "REG#<hour>"): how many users that source registered in that hour
  (`n`), in the whole deployment: kept in the cell the shard rule gives the address
  (logic/registrations.py). `source` is a digest of the address (for IPv6, of its /64, and
  apart of its /48), not the address.
- ("REGCOUNTED#<token>", "REGCOUNTED#"): a registration counted for another cell, by a
  digest of its attempt, so that a retry of it counts once; expires after two hours.

A bucket is taken from with at most two conditional UpdateItems and no read:
1. `SET tat = now + interval` if the bucket has drained (the usual case: one call);
2. otherwise `SET tat = tat + interval` if `tat` is at most `now + (burst - 1) * interval`.
The second is an atomic increment checked against the stored value at the moment of the
write, so any number of concurrent frames (two devices, a pipelining client) are each let
through exactly while the bucket has room, and none is refused below the limit. A frame
refused writes nothing.

- ("U#<userId>", "RATE#<name>#<connectionId>"): a connection's frames, or its refused
  frames, within a sliding window (`FrameWindow`, docs/protocol.md §3): a ring of
  `slots` counters, `n<i>` counting the events of slot `t<i>` (slot = ms // slot_ms,
  i = slot % slots). Every event is counted, one UpdateItem, and its answer (the whole
  item) tells how many the window holds: a count, not a bucket, so that "more than N
  within T" holds to the letter however the events are spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.contract import FrameWindow, RateLimit
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger.dal.profiles import user_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RATE_PREFIX = "RATE#"
# TTL is lazy and reads never look at expired buckets' age: a second past draining is
# enough (the item then only says what "no item" says).
DRAINED_GRACE_SECONDS = 1
REGISTRATION_WINDOW_SECONDS = 3600
# ("REGCOUNTED#<token>", "REGCOUNTED#"): a registration counted for another cell.
COUNTED_PREFIX = "REGCOUNTED#"
# Windows' slots a container remembers having counted in (a hint, see count_in_window).
MAX_SLOTS_REMEMBERED = 10_000


def bucket_key(user_id: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(user_id)}, "sk": {"S": RATE_PREFIX + name}}


@dataclass(frozen=True)
class WindowCount:
    """What a window holds once an event was counted in it (that event included)."""

    count: int
    # How long until the oldest slot it holds leaves the window (at least 1 ms).
    oldest_leaves_in_ms: int


class RateLimits:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._slots_started: set[tuple[str, str, int]] = set()

    def take(self, user_id: str, name: str, now_ms: int, limit: RateLimit) -> bool:
        """Take one unit from a user's bucket `name`; False (nothing written) when full."""
        return self.take_or_wait(user_id, name, now_ms, limit) == 0

    def take_or_wait(self, user_id: str, name: str, now_ms: int, limit: RateLimit) -> int:
        """Take one unit from a user's bucket `name`: 0 when taken, else (nothing written)
        how many ms until the bucket has room again (the refusal's `retryAfter`)."""
        interval = limit.interval_ms
        ceiling = now_ms + (limit.burst - 1) * interval
        try:
            with dynamodb_errors():
                self._update(
                    user_id,
                    name,
                    "SET tat = :start, expiresAt = :exp",
                    "attribute_not_exists(tat) OR tat <= :now",
                    {
                        ":start": {"N": str(now_ms + interval)},
                        ":now": {"N": str(now_ms)},
                        ":exp": {"N": str(_expiry(now_ms + interval))},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return 0
        except ConditionFailed as failed:
            item = failed.item or {}
            if "tat" in item and int(item["tat"]["N"]) > ceiling:
                # Full: refused without a second call, until one unit has leaked out.
                return int(item["tat"]["N"]) - ceiling
        try:
            with dynamodb_errors():
                self._update(
                    user_id,
                    name,
                    "SET tat = tat + :interval, expiresAt = :exp",
                    "tat <= :ceiling",
                    {
                        ":interval": {"N": str(interval)},
                        ":ceiling": {"N": str(ceiling)},
                        # tat ends at most one interval past the ceiling.
                        ":exp": {"N": str(_expiry(ceiling + interval))},
                    },
                )
        except ConditionFailed:
            return interval  # filled by a concurrent frame meanwhile
        return 0

    def count_in_window(
        self, user_id: str, name: str, now_ms: int, window: FrameWindow
    ) -> WindowCount:
        """Count one event in a user's window `name` (always written); what it now holds.
        One UpdateItem as a rule: the first event of a slot starts it, and the next ones
        this container counts add to it; two when another container started the slot."""
        slot = now_ms // window.slot_ms
        at = slot % window.slots
        names = {"#n": f"n{at}", "#t": f"t{at}"}
        one = {":one": {"N": "1"}, ":exp": {"N": str(_expiry(now_ms + window.window_ms))}}
        this_slot = {":slot": {"N": str(slot)}}
        add = "ADD #n :one SET expiresAt = :exp"
        attributes = None
        if (user_id, name, slot) in self._slots_started:
            attributes = self._write_window(
                user_id, name, add, "#t = :slot", names, one | this_slot
            )
        if attributes is None:
            # A slot of the ring is taken over from the one a window ago.
            attributes = self._write_window(
                user_id,
                name,
                "SET #n = :one, #t = :slot, expiresAt = :exp",
                "attribute_not_exists(#t) OR #t < :slot",
                names,
                one | this_slot,
            )
        if attributes is None:  # started meanwhile by another frame
            attributes = self._write_window(user_id, name, add, "attribute_exists(#t)", names, one)
        if attributes is None:  # not reachable: #t is there once the start above failed
            raise RuntimeError("a window's slot vanished while it was counted")
        self._remember_slot(user_id, name, slot)
        return _window_count(attributes, slot, now_ms, window)

    def _write_window(
        self,
        user_id: str,
        name: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The item after a conditional write, or None (nothing written) if it failed."""
        try:
            with dynamodb_errors():
                answer = self._update(
                    user_id,
                    name,
                    update,
                    condition,
                    values,
                    ExpressionAttributeNames=names,
                    ReturnValues="ALL_NEW",
                )
        except ConditionFailed:
            return None
        attributes: dict[str, Any] = answer["Attributes"]
        return attributes

    def _remember_slot(self, user_id: str, name: str, slot: int) -> None:
        """The slots this container counted in, per window: the next event of a burst
        then adds to its slot with one call. A hint only (the writes' conditions decide),
        so it is kept small and forgotten freely."""
        if len(self._slots_started) >= MAX_SLOTS_REMEMBERED:
            self._slots_started.clear()
        self._slots_started.add((user_id, name, slot))

    def _update(
        self, user_id: str, name: str, update: str, condition: str, values: Any, **extra: Any
    ) -> Any:
        return self._client.update_item(
            TableName=self._table,
            Key=bucket_key(user_id, name),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            **extra,
        )

    def registration_count(self, source: str, now_s: int, per_hour: int) -> dict[str, Any]:
        """The TransactWriteItems action that counts one registration from `source` in this
        hour, and fails its condition when the hour already has `per_hour` of them."""
        window = now_s - now_s % REGISTRATION_WINDOW_SECONDS
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"IP#{source}"}, "sk": {"S": f"REG#{window}"}},
                "UpdateExpression": "ADD n :one SET expiresAt = :exp",
                "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":limit": {"N": str(per_hour)},
                    ":exp": {"N": str(window + REGISTRATION_WINDOW_SECONDS)},
                },
            }
        }

    def count_registration(self, counts: Sequence[dict[str, Any]], token: str, now_s: int) -> bool:
        """Count one registration on its own (one another cell writes): the
        `registration_count` actions in one transaction, with a record of `token`, which
        names the registration: a retry of it (a lost answer) finds the record and counts
        nothing more. False, nothing written, when one of the counters is full."""
        window = now_s - now_s % REGISTRATION_WINDOW_SECONDS
        # An UpdateItem that creates the record, as every write of this table is one (the
        # functions may UpdateItem here, nothing else).
        record = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"{COUNTED_PREFIX}{token}"}, "sk": {"S": COUNTED_PREFIX}},
                "UpdateExpression": "SET expiresAt = :exp",
                "ConditionExpression": "attribute_not_exists(pk)",
                # Kept while a retry could still come: past the counters' own hour.
                "ExpressionAttributeValues": {
                    ":exp": {"N": str(window + 2 * REGISTRATION_WINDOW_SECONDS)}
                },
            }
        }
        try:
            with dynamodb_errors():
                self._client.transact_write_items(TransactItems=[record, *counts])  # type: ignore[list-item]
        except TransactionCanceled as canceled:
            failed = canceled.failed_conditions()
            if 0 in failed:
                return True  # counted by an earlier try of the same registration
            if failed:
                return False
            raise
        return True


def _window_count(item: dict[str, Any], slot: int, now_ms: int, window: FrameWindow) -> WindowCount:
    """The events of the slots still inside the window (the newest `slots` slots)."""
    held = []
    for at in range(window.slots):
        stamp = item.get(f"t{at}")
        if stamp is not None and int(stamp["N"]) > slot - window.slots:
            held.append((int(stamp["N"]), int(item[f"n{at}"]["N"])))
    oldest = min(stamp for stamp, _ in held)
    leaves_at = (oldest + window.slots) * window.slot_ms
    return WindowCount(sum(n for _, n in held), max(1, leaves_at - now_ms))


def _expiry(tat_ms: int) -> int:
    return tat_ms // 1000 + DRAINED_GRACE_SECONDS
