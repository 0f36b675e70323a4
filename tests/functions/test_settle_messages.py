"""What a flap's message on the settle queue is (transport/presence_events.py), and how
long it waits there (logic/presence_changes.py)."""

from __future__ import annotations

import json

import pytest

from messenger.contract import PRESENCE_SETTLE_MS
from messenger.handlers.presence_changed import is_queue_batch
from messenger.logic.presence_changes import MAX_SETTLE_DELAY_SECONDS, settle_delay_seconds
from messenger.transport.presence_events import PresenceEvent

pytestmark = pytest.mark.unit

FLAP = PresenceEvent(
    "bob", "https://a1.execute-api.us-east-1.amazonaws.com/dev", False, False, 5, 9
)


@pytest.mark.parametrize(("wait_ms", "seconds"), [(1, 1), (400, 1), (999, 1), (1000, 1)])
def test_a_flap_waits_the_rest_of_its_settle_time_in_whole_seconds(
    wait_ms: int, seconds: int
) -> None:
    assert settle_delay_seconds(wait_ms) == seconds


def test_a_flap_never_waits_longer_than_the_settle_time() -> None:
    assert MAX_SETTLE_DELAY_SECONDS * 1000 >= PRESENCE_SETTLE_MS
    assert settle_delay_seconds(60_000) == MAX_SETTLE_DELAY_SECONDS


def test_a_held_flap_reads_back_as_it_was_sent() -> None:
    assert PresenceEvent.from_settled(FLAP.to_payload().decode()) == FLAP


@pytest.mark.parametrize(
    "change",
    [
        {"hiddenOnly": True},  # a visibility change is never held
        {"online": None},
        {"at": 0},
        {"settleUntil": "9"},
        {"endpoint": "ftp://x"},
        {"userId": ""},
        {"more": "than the event carries"},
    ],
)
def test_anything_else_on_the_queue_is_refused(change: dict[str, object]) -> None:
    body = json.dumps({**json.loads(FLAP.to_payload()), **change})
    with pytest.raises(ValueError):
        PresenceEvent.from_settled(body)


def test_only_sqs_records_make_a_queue_batch() -> None:
    record = {"eventSource": "aws:sqs", "body": "{}"}
    assert is_queue_batch({"Records": [record, record]})
    assert not is_queue_batch({"Records": []})
    assert not is_queue_batch({"Records": [record, {"eventSource": "aws:sns"}]})
    assert not is_queue_batch(json.loads(FLAP.to_payload()))
