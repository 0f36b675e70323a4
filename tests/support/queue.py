"""Queues filled straight into the Queue table, as sendMessage and ack store items (the
DAL's own item format): long queues in a moment, for tests of what reads them."""

from __future__ import annotations

from typing import Any

from messenger.contract import DEFAULT_MESSAGE_TTL_SECONDS
from messenger.dal.queue import QueuedMessage, QueuedReceipt, new_seq, queue_item
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.names import ReceiptStatus
from tests.support.harness import TABLE_NAMES, Harness

SENDERS = [f"sender{i:02d}" for i in range(7)]


def seed(
    h: Harness, owner: str, count: int, *, body_bytes: int = 60, receipt_every: int = 0
) -> list[str]:
    """Queue `count` items for `owner` straight into the table (as sendMessage and ack
    would store them), in store order; every `receipt_every`-th is a receipt. Returns
    their ids in queue order."""
    ids: list[str] = []
    requests: list[dict[str, Any]] = []
    for i in range(count):
        now_us = h.clock.now_us()
        entry: QueuedMessage | QueuedReceipt
        if receipt_every and i % receipt_every == receipt_every - 1:
            entry = QueuedReceipt(
                recipient=owner,
                status=ReceiptStatus.DELIVERED,
                message_ids=(f"mine-{now_us}",),
                by=SENDERS[i % len(SENDERS)],
                at=now_us // 1000,
                seq=new_seq(now_us),
                expires_at=now_us // 1_000_000 + DEFAULT_MESSAGE_TTL_SECONDS,
            )
        else:
            entry = QueuedMessage(
                recipient=owner,
                sender=SENDERS[i % len(SENDERS)],
                message_id=f"msg-{now_us}",
                body=b64url_encode(bytes([i % 256]) * body_bytes),
                nonce=b64url_encode(b"\x00" * 24),
                sent_at=now_us // 1000,
                server_ts=now_us // 1000,
                seq=new_seq(now_us),
                expires_at=now_us // 1_000_000 + DEFAULT_MESSAGE_TTL_SECONDS,
            )
        ids.append(entry.id)
        requests.append({"PutRequest": {"Item": queue_item(entry)}})
    for start in range(0, len(requests), 25):
        h.dynamodb.batch_write_item(
            RequestItems={TABLE_NAMES["Queue"]: requests[start : start + 25]}
        )
    return ids
