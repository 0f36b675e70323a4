"""The presence function (no route): tells a user's watchers that their presence changed.

Two event sources:
- Lambda's Event invocation, by whatever saw the change: a $connect, a $disconnect, a post
  that found a connection closed, a visibility change. A failure raises, so that Lambda
  tries the event again; a retry tells the state as it is then, which is what a watcher
  wants to know.
- Its settle queue (SQS, a batch of flaps that have waited out their settle time): each
  record is told or overtaken. A record that fails is reported as a batch item failure
  and comes back later (after PRESENCE_SETTLE_MAX_RECEIVES, the dead-letter queue); one
  that is not a change is logged and dropped: it would fail every time.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.contract import Metric
from messenger.handlers._runtime import lambda_entry
from messenger.observability import count, logger
from messenger.transport.presence_events import PresenceEvent
from messenger.wiring import services

SQS_EVENT_SOURCE = "aws:sqs"


def is_queue_batch(event: Any) -> bool:
    """Whether the event is a batch from the settle queue (not an Event invocation)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == SQS_EVENT_SOURCE for r in records)
    )


def _tell_settled(record: SQSRecord) -> None:
    try:
        change = PresenceEvent.from_settled(record.body)
    except ValueError as error:
        logger.warning(
            "dropped a settle queue record that is not a presence change",
            extra={"messageId": record.message_id, "reason": str(error)},
        )
        count(Metric.PRESENCE_SETTLE_RECORDS_DROPPED)
        return
    svc = services()
    changes = svc.presence_changes(svc.settings.connections_endpoint or change.endpoint)
    changes.tell_settled(change)


def _tell(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_queue_batch(event):
        # A processor per batch: where invocations share a process (the local stack), a
        # shared one would mix their records. A batch whose every record failed is
        # reported like any other (each record comes back, then the dead-letter queue),
        # not raised.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=_tell_settled, processor=processor, context=context
            )
        )
    change = PresenceEvent.from_payload(event)
    logger.append_keys(user=change.user_id)
    svc = services()
    changes = svc.presence_changes(svc.settings.connections_endpoint or change.endpoint)
    if change.hidden_only:
        changes.forget_hidden_watchers(change.user_id)
    else:
        changes.tell_change(change)
    return {"statusCode": 200}


handler = lambda_entry(_tell)
