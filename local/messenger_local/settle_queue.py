"""The presence function's settle queue and its event source mapping, as Lambda runs them
(infra/presence_settle.py): a flap waits on the queue (SQS's DelaySeconds, which moto
honours), then a batch of up to PRESENCE_SETTLE_BATCH_SIZE is received and given to the
presence function as an SQS event; what it does not report failed is deleted, and what
it reports failed (or every record, when the invocation failed) comes back after the
queue's visibility timeout.

`QueueSource` is the mapping's one poll, blocking: the test harness runs it after each
invocation (messenger_local.harness), the local stack in a loop per cell
(`poll_forever`), each invocation run as the stack runs an asynchronous Invoke
(messenger_local.lambda_api).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from messenger.contract import PRESENCE_SETTLE_BATCH_SIZE
from messenger_local import lambda_api
from messenger_local.events import sqs_event

# How often the local stack looks at a cell's settle queue that may hold a flap: Lambda
# long-polls, but a long poll would hold moto (which serves one request at a time) for its
# whole wait.
POLL_SECONDS = 0.1
_log = logging.getLogger(__name__)


class SentTo:
    """The queues something was sent to since each was last found empty: only those are
    asked for a batch (a receive costs a millisecond of moto's time; most stacks and tests
    never flap, and an idle stack polling every queue ten times a second spent ~3% of a
    core on it). The functions' SQS clients report their sends (`watch`)."""

    def __init__(self) -> None:
        self._urls: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, client: Any) -> Any:
        """`client`, noting the queue of each SendMessage it makes from now on."""
        client.meta.events.register("before-parameter-build.sqs.SendMessage", self._sent)
        return client

    def _sent(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.note(params["QueueUrl"])

    def note(self, url: str) -> None:
        with self._lock:
            self._urls.add(url)

    def may_hold(self, url: str) -> bool:
        with self._lock:
            return url in self._urls

    def forget(self, url: str) -> None:
        with self._lock:
            self._urls.discard(url)


# One for the process: the harnesses' and the local stack's functions send, their
# queues' sources ask.
SENT_TO = SentTo()


@dataclass(frozen=True)
class Batch:
    """Messages received together, and the event that gives them to the function."""

    messages: list[dict[str, Any]]
    event: dict[str, Any]


class QueueSource:
    """One queue's event source mapping: receive a batch, then settle it by the function's
    answer (ReportBatchItemFailures)."""

    def __init__(
        self, sqs: Any, queue_url: str, region: str, batch_size: int = PRESENCE_SETTLE_BATCH_SIZE
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._region = region
        self._batch_size = batch_size
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]

    def receive(self) -> Batch | None:
        """The next batch of messages whose delay is over, None if there is none now."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return None
        return Batch(messages, sqs_event(messages, self.queue_arn, self._region))

    def next_batch(self) -> Batch | None:
        """The next batch whose delay is over, if the queue may hold any (SENT_TO): a
        queue found empty is not asked again until something is sent to it."""
        if not SENT_TO.may_hold(self.queue_url):
            return None
        batch = self.receive()
        if batch is None:
            # Forgotten first, then looked at: a send meanwhile notes it again.
            SENT_TO.forget(self.queue_url)
            if self.depth():
                SENT_TO.note(self.queue_url)
        return batch

    def depth(self) -> int:
        """Messages on the queue: visible, in flight or still delayed."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        found = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(found["Attributes"].get(name, 0)) for name in names)

    def settle(self, batch: Batch, response: Any) -> int:
        """Delete what the function took: every message it did not report failed in its
        response (`{"batchItemFailures": [{"itemIdentifier": id}]}`); none when the
        invocation failed (`response` None). How many were deleted."""
        if response is None:
            return 0
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        failed = {item.get("itemIdentifier") for item in failures or []}
        done = [m for m in batch.messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
                ],
            )
        return len(done)


async def poll_forever(source: QueueSource, target: lambda_api.Target) -> None:
    """The local stack's mapping for one cell: each batch is an invocation of the presence
    function, recorded and run as an asynchronous Invoke is; until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        batch = None
        # A side whose region is lost (a local failover) reads nothing more: what is on
        # its queue stays there, as it would in that region. A queue nothing was sent to
        # is not asked (SENT_TO), not even through a worker thread.
        if not target.gateway.out_of_service and SENT_TO.may_hold(source.queue_url):
            try:
                batch = await loop.run_in_executor(None, source.next_batch)
            except Exception:  # moto stopped under us, say: look again later
                _log.warning("could not receive from the settle queue", exc_info=True)
        if batch is None:
            await asyncio.sleep(POLL_SECONDS)
            continue
        target.gateway.spawn(_deliver(source, target, batch))


async def _deliver(source: QueueSource, target: lambda_api.Target, batch: Batch) -> None:
    outcome = await lambda_api.run(target, batch.event)
    response = outcome.response if outcome.succeeded else None
    try:
        await asyncio.get_running_loop().run_in_executor(None, source.settle, batch, response)
    except Exception:  # not deleted: the batch comes back after the visibility timeout
        _log.warning("could not delete a batch from the settle queue", exc_info=True)
