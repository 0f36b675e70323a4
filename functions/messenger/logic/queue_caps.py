"""The queue caps (docs/protocol.md §2): how many messages each queue (one per device of a
user) holds, and how many of them from any one sender, so that no stranger (and no crowd)
can fill anyone's queue. Receipts do not count. A message past either cap in any of the
recipient's queues is refused QUEUE_FULL, and the sender's SDK keeps it and sends it
again after `retryAfter`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from messenger.dal.queue import user_of_queue
from messenger.dal.queue_counts import Cap, Counted, QueueCounts
from messenger.errors import QueueFull
from messenger.observability import logger


class QueueCaps:
    def __init__(self, counts: QueueCounts, per_queue: int, per_sender: int) -> None:
        self._counts = counts
        self._per_queue = per_queue
        self._per_sender = per_sender

    def admit(self, queue: str, sender: str, now_s: int, expires_at: int) -> Counted:
        """Count a message into one queue (a device's of the recipient); QueueFull
        (nothing written) when it would pass either cap. One conditional write, no read."""
        counted = self._counts.count(
            queue, sender, self._per_queue, self._per_sender, now_s, expires_at
        )
        recipient = user_of_queue(queue)
        if counted is Cap.QUEUE:
            raise QueueFull(f"{recipient!r} has too many messages waiting; resend later")
        if counted is Cap.SENDER:
            raise QueueFull(f"too many of your messages wait for {recipient!r}; resend later")
        return counted

    def take_back(self, counted: Counted) -> None:
        """Undo `admit` for a message that was not stored after all (a resend, a failure).
        Never fails the caller: a count left behind heals when its counter expires."""
        with _best_effort("take back a queue count"):
            self._counts.undo(counted)

    def forget_queue(self, queue: str) -> None:
        """A deleted queue (a removed device's) holds nothing: its counts start afresh.
        Never fails the caller: a count left behind heals when its counter expires."""
        with _best_effort("forget a deleted queue's counts"):
            self._counts.forget(queue)

    def release(self, queue: str, by_sender: Mapping[str, int]) -> None:
        """Count out messages acknowledged from one queue. Never fails the ack: a count left
        behind heals when its counter expires (one message TTL after its last message)."""
        if not by_sender:
            return
        with _best_effort("release queue counts"):
            self._counts.release(queue, by_sender)


@contextmanager
def _best_effort(what: str) -> Iterator[None]:
    """A count's write that never fails its caller: a count left behind heals when its
    counter expires (one message TTL after its last message)."""
    try:
        yield
    except Exception:
        logger.warning(f"could not {what}", exc_info=True)
