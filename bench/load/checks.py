"""What must hold at the end of a load run: nothing lost, nothing duplicated, each
sender's order kept, every message acknowledged and receipted once, the queue empty."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from bench.load.ledger import Sent, Tally


@dataclass
class Check:
    name: str
    failures: int
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.failures == 0


def check_run(
    plan: list[Sent],
    tally: Tally,
    queued_left: dict[str, int] | None,
    failover: bool = False,
    seen: bool = False,
) -> list[Check]:
    """Every check, on the run's ledger and tally and on what the queue still holds per
    user (None when the queue table is out of reach: a remote run given no endpoint;
    then the drain's last `sync`, answered 0 by everyone, speaks for it).

    After a failover (docs/protocol.md §7) a message may be stored again by its sender's
    resend and receipted `delivered` more than once (a receipt, or the ack that led to
    it, may have been lost with the region): each still reaches its recipient once as
    the user sees it (dropped by (from, messageId)), and gets at least one receipt.
    With `seen` (the recipients marked what they read), every message's sender also got
    a `seen` receipt."""
    lost = [s for s in plan if s.acked_at is not None and s.received_at is None]
    order_broken = 0
    by_pair: dict[tuple[str, str], list[Sent]] = {}
    for sent in plan:
        by_pair.setdefault((sent.sender, sent.recipient), []).append(sent)
    for messages in by_pair.values():
        stamps = [s.server_ts for s in sorted(messages, key=lambda s: s.pair_index)]
        order_broken += sum(
            1 for a, b in itertools.pairwise(stamps) if a is None or b is None or b < a
        )
    # A second stored copy is allowed only after the sender lost an ack and sent the
    # frame again (docs/protocol.md §2); the recipient still keeps one.
    # So may a failover: a peer cell's Relay call whose answer the lost region never sent
    # is made again in the standby, and the first copy may have been replicated already.
    stored_twice = [
        s for s in plan if len(s.copies) > 1 and not (s.lost_acks or s.resends or failover)
    ]
    wrong_receipts = [
        s
        for s in plan
        if not (
            s.delivered_receipts >= 1
            if failover
            else s.delivered_receipts == 1
            if not s.lost_acks and s.copies_acked <= 1
            # Two acks of one item racing (a live copy and a sync page's) may both find
            # it queued and both make a receipt: never more receipts than acks.
            else 1 <= s.delivered_receipts <= max(len(s.copies), s.copies_acked)
        )
    ]
    checks = [
        Check("every message acked to its sender", sum(s.acked_at is None for s in plan)),
        Check(
            "zero lost (acked but never received)",
            len(lost),
            ", ".join(s.message_id for s in lost[:5]),
        ),
        Check(
            "zero duplicated (each kept once; stored once unless its ack was lost)",
            len(stored_twice),
            ", ".join(s.message_id for s in stored_twice[:5]),
        ),
        Check("each sender's order kept per recipient (serverTs)", order_broken),
        Check(
            "the ack names a copy the recipient got (serverTs)",
            sum(
                not any(ts in s.copies for ts in [s.ack_server_ts, *s.resend_acks])
                for s in plan
                if s.received_at is not None
            ),
        ),
        Check("every message acked by its recipient", sum(not s.recipient_acked for s in plan)),
        Check(
            "a delivered receipt for every message (at least one after a failover)"
            if failover
            else "one delivered receipt per message (per stored copy, or per ack of a copy)",
            len(wrong_receipts),
            ", ".join(f"{s.message_id}: {s.delivered_receipts}" for s in wrong_receipts[:5]),
        ),
        Check(
            "no other problem (order on a connection, decryption, stray frames)",
            tally.counts["problems"],
            "; ".join(tally.problems[:3])[:1000],
        ),
    ]
    if seen:
        unseen = [s for s in plan if not s.seen_receipts]
        checks.append(
            Check(
                "a seen receipt for every message",
                len(unseen),
                ", ".join(s.message_id for s in unseen[:5]),
            )
        )
    if queued_left is None:
        checks.append(Check("queue empty (sync answered 0 for every user)", 0))
    else:
        left = {user: n for user, n in queued_left.items() if n}
        checks.append(
            Check(
                "queue table empty (one Query per user partition)",
                sum(left.values()),
                str(dict(list(left.items())[:5])) if left else "",
            )
        )
    return checks


def queue_partitions(dynamodb: Any, table: str, user_ids: list[str]) -> dict[str, int]:
    """How many items each user's queue partition still holds (one Query each, no Scan)."""
    left = {}
    for user_id in user_ids:
        response = dynamodb.query(
            TableName=table,
            Select="COUNT",
            ConsistentRead=True,
            KeyConditionExpression="pk = :user",
            ExpressionAttributeValues={":user": {"S": user_id}},
        )
        left[user_id] = int(response["Count"])
    return left
