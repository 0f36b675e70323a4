"""The settle queue's event source as the harness and the local stack run it
(messenger_local.settle_queue): a queue nothing was sent to since it was found empty is
not asked at all, and one that was sent to is read until it holds nothing, delayed
messages included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from messenger_local.aws import REGION, create_settle_queue
from messenger_local.harness import sqs_client
from messenger_local.settle_queue import QueueSource

pytestmark = pytest.mark.integration


@pytest.fixture
def queue() -> Iterator[tuple[QueueSource, list[str]]]:
    """A settle queue in moto, and the list of the queues its source asked for messages."""
    with mock_aws():
        client = sqs_client()
        source = QueueSource(client, create_settle_queue(client, "test-settle-source"), REGION)
        asked: list[str] = []

        def receiving(params: dict[str, Any], **kwargs: Any) -> None:
            asked.append(params["QueueUrl"])

        client.meta.events.register("before-parameter-build.sqs.ReceiveMessage", receiving)
        # Found empty once: from then on it is asked only after a send.
        source.next_batch()
        asked.clear()
        yield source, asked


def test_an_idle_queue_is_never_asked(queue: tuple[QueueSource, list[str]]) -> None:
    source, asked = queue
    assert [source.next_batch() for _ in range(50)] == [None] * 50
    assert asked == []


def test_a_send_makes_it_asked_until_what_was_sent_is_read(
    queue: tuple[QueueSource, list[str]],
) -> None:
    source, asked = queue
    sqs_client().send_message(QueueUrl=source.queue_url, MessageBody="{}")

    batch = source.next_batch()

    assert batch is not None and [m["Body"] for m in batch.messages] == ["{}"]
    source.settle(batch, {"batchItemFailures": []})
    assert source.next_batch() is None  # found empty: asked once more, then no longer
    assert len(asked) == 2
    assert source.next_batch() is None
    assert len(asked) == 2


def test_a_delayed_message_keeps_the_queue_asked(queue: tuple[QueueSource, list[str]]) -> None:
    source, asked = queue
    sqs_client().send_message(QueueUrl=source.queue_url, MessageBody="{}", DelaySeconds=60)

    assert source.next_batch() is None  # not due yet, but there
    assert source.next_batch() is None
    assert len(asked) == 2
    assert source.depth() == 1
