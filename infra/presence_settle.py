"""The presence function's settle queue (docs/performance.md "Presence flaps"): a flap
waits out its settle time here (SQS's DelaySeconds), then comes back to the presence
function, whose second event source the queue is (`messenger.handlers.presence_changed`).

The queue and its dead-letter queue are encrypted with SQS-managed keys and refuse
requests without TLS. A record that keeps failing (PRESENCE_SETTLE_MAX_RECEIVES times)
goes to the dead-letter queue, and any record there raises an alarm. The presence
function may send to this queue only (Access.SETTLE_PRESENCE, infra/permissions.py);
the event source mapping's receive and delete are granted to it by CDK, on this queue
only. Made in the stack's own scope (infra/stack.py says why).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_event_sources import SqsEventSource

from infra.config import DeploymentConfig
from infra.monitoring import PERIOD, notifying_alarm
from infra.nag import acknowledge
from messenger.contract import (
    PRESENCE_SETTLE_BATCH_SIZE,
    PRESENCE_SETTLE_MAX_RECEIVES,
    PRESENCE_SETTLE_RETENTION_SECONDS,
    PRESENCE_SETTLE_VISIBILITY_SECONDS,
)

QUEUE_ID = "PresenceSettleQueue"
DEAD_LETTERS_ID = "PresenceSettleDeadLetters"
DEAD_LETTERS_ALARM_ID = "PresenceSettleDeadLettersAlarm"
# A poison record is kept long enough to be read after a weekend.
DEAD_LETTER_RETENTION = Duration.days(14)


class PresenceSettle:
    """The settle queue, its dead-letter queue, and (`feed`, `alarm`) what reads it and
    what watches it."""

    def __init__(self, stack: Stack, *, config: DeploymentConfig) -> None:
        self._stack = stack
        self.dead_letters = sqs.Queue(
            stack,
            DEAD_LETTERS_ID,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
            removal_policy=config.removal_policy,
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "this is the settle queue's dead-letter queue: what fails there is alarmed on",
        )
        self.queue = sqs.Queue(
            stack,
            QUEUE_ID,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(PRESENCE_SETTLE_RETENTION_SECONDS),
            visibility_timeout=Duration.seconds(PRESENCE_SETTLE_VISIBILITY_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=PRESENCE_SETTLE_MAX_RECEIVES, queue=self.dead_letters
            ),
            removal_policy=config.removal_policy,
        )

    def feed(self, function: lambda_.IFunction) -> None:
        """Make the queue `function`'s event source: small batches, as soon as they are
        there (no batching window: a flap has waited its settle time already), each
        record that fails reported on its own (ReportBatchItemFailures)."""
        function.add_event_source(
            SqsEventSource(
                self.queue,
                batch_size=PRESENCE_SETTLE_BATCH_SIZE,
                report_batch_item_failures=True,
            )
        )

    def alarm(self, topic: sns.ITopic) -> cw.Alarm:
        """Any record on the dead-letter queue: a change that failed every time."""
        return notifying_alarm(
            self._stack,
            DEAD_LETTERS_ALARM_ID,
            topic,
            self.dead_letters.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic=cw.Stats.MAXIMUM
            ),
            1,
            "Presence changes that failed on every try are on the settle queue's dead-letter queue",
        )
