"""The local history: order, duplicates, the outbox and statuses that only move forward."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_client.store import HistoryStore, MessageStatus

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "history.sqlite3", me="alice")
    yield history
    history.close()


def test_the_history_file_is_private(tmp_path: Path) -> None:
    HistoryStore(tmp_path / "h.sqlite3", me="alice").close()
    assert stat.S_IMODE((tmp_path / "h.sqlite3").stat().st_mode) == 0o600


def test_a_conversation_is_ordered_by_sent_at_then_message_id(store: HistoryStore) -> None:
    # Given messages that arrive out of order, two of them in the same millisecond
    store.add_incoming("bob", "01B", "third", sent_at=200, server_ts=5)
    store.add_outgoing("bob", "01Z", "first", sent_at=100, frame="{}")
    store.add_incoming("bob", "01A", "second", sent_at=200, server_ts=4)
    store.add_incoming("carol", "01C", "elsewhere", sent_at=150, server_ts=6)
    # Then the conversation with bob reads by sentAt, then messageId
    assert [m.text for m in store.history("bob")] == ["first", "second", "third"]
    assert [m.text for m in store.history("bob", limit=2)] == ["second", "third"]
    assert [m.text for m in store.history("carol")] == ["elsewhere"]


def test_a_message_is_stored_once_per_sender_and_message_id(store: HistoryStore) -> None:
    assert store.add_incoming("bob", "01A", "hi", sent_at=1, server_ts=1)
    # When the same (from, messageId) comes again, Then it is dropped
    assert not store.add_incoming("bob", "01A", "hi again", sent_at=2, server_ts=2)
    assert [m.text for m in store.history("bob")] == ["hi"]
    # But the same messageId from someone else is another message
    assert store.add_incoming("carol", "01A", "hello", sent_at=1, server_ts=1)
    assert store.has_message("bob", "01A") and store.has_message("carol", "01A")


def test_a_rejected_message_counts_as_seen_before(store: HistoryStore) -> None:
    assert store.add_rejected("bob", "01A", 1, "does not open")
    assert store.has_message("bob", "01A")
    assert store.history("bob") == []
    assert [r.reason for r in store.rejected("bob")] == ["does not open"]


def test_the_outbox_gives_the_oldest_pending_frame_exactly_as_stored(store: HistoryStore) -> None:
    store.add_outgoing("bob", "01B", "one", sent_at=1, frame='{"n":1}')
    store.add_outgoing("carol", "01A", "two", sent_at=2, frame='{"n":2}')
    head = store.next_pending()
    assert head is not None and (head.message_id, head.frame) == ("01B", '{"n":1}')
    # When the server acks it, Then the next one is due
    assert store.mark_sent("01B", server_ts=10)
    head = store.next_pending()
    assert head is not None and head.message_id == "01A"
    # When the server refuses that one for good, Then the outbox is empty
    assert store.mark_failed("01A", "UNKNOWN_RECIPIENT: no user")
    assert store.next_pending() is None
    failed = store.get("alice", "01A")
    assert failed is not None and failed.status == MessageStatus.FAILED


def test_statuses_only_move_forward_whatever_order_acks_and_receipts_come_in(
    store: HistoryStore,
) -> None:
    store.add_outgoing("bob", "01A", "hi", sent_at=1, frame="{}")
    # Given a delivered receipt that beats the ack of a resend
    assert store.apply_receipt("bob", ["01A"], MessageStatus.DELIVERED) == ["01A"]
    # Then the late ack changes nothing, and the message left the outbox
    assert not store.mark_sent("01A", server_ts=5)
    assert store.next_pending() is None
    # And seen is final: a late delivered receipt does not undo it
    assert store.apply_receipt("bob", ["01A"], MessageStatus.SEEN) == ["01A"]
    assert store.apply_receipt("bob", ["01A"], MessageStatus.DELIVERED) == []
    message = store.get("alice", "01A")
    assert message is not None and message.status == MessageStatus.SEEN


def test_a_receipt_only_touches_our_messages_to_whoever_sent_it(store: HistoryStore) -> None:
    store.add_outgoing("bob", "01A", "to bob", sent_at=1, frame="{}")
    store.add_incoming("bob", "01B", "from bob", sent_at=2, server_ts=2)
    assert store.apply_receipt("carol", ["01A"], MessageStatus.SEEN) == []
    assert store.apply_receipt("bob", ["01B", "unknown"], MessageStatus.SEEN) == []


def test_reading_a_conversation_queues_one_seen_mark_per_message(store: HistoryStore) -> None:
    store.add_incoming("bob", "01A", "a", sent_at=1, server_ts=1)
    store.add_incoming("bob", "01B", "b", sent_at=2, server_ts=2)
    store.add_incoming("carol", "01C", "c", sent_at=3, server_ts=3)
    assert [c.unread for c in store.conversations()] == [1, 2]  # carol is the most recent
    # When alice reads bob's conversation
    assert store.mark_read("bob") == ["01A", "01B"]
    # Then those marks wait to be reported, and once reported, are not reported again
    assert store.unreported_seen() == {"bob": ["01A", "01B"]}
    store.mark_seen_reported("bob", ["01A", "01B"])
    assert store.unreported_seen() == {}
    assert store.mark_read("bob") == []


def test_our_latest_sent_at_is_remembered(store: HistoryStore) -> None:
    assert store.last_sent_at() == 0
    store.add_outgoing("bob", "01A", "a", sent_at=42, frame="{}")
    store.add_incoming("bob", "01B", "b", sent_at=99, server_ts=1)
    assert store.last_sent_at() == 42


def test_what_we_remember_about_the_server_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    first = HistoryStore(path, "bob")
    assert first.get_meta("epoch") is None
    first.set_meta("epoch", "us-east-1")
    first.set_meta("epoch", "c0-2")
    first.close()
    assert HistoryStore(path, "bob").get_meta("epoch") == "c0-2"


def test_after_a_failover_only_the_undelivered_go_again_with_their_frame(
    store: HistoryStore,
) -> None:
    # Given one message delivered, one sent (acked, no receipt), one pending, one failed
    for number, message_id in enumerate(["01D", "01S", "01P", "01F"]):
        store.add_outgoing("bob", message_id, message_id, number, frame=f'{{"n":{number}}}')
    store.mark_sent("01D", 1)
    store.apply_receipt("bob", ["01D"], MessageStatus.DELIVERED)
    store.mark_sent("01S", 2)
    store.mark_failed("01F", "BAD_REQUEST: no")

    # When a failover marks what was not delivered
    assert store.mark_undelivered_for_resend() == ["01S"]

    # Then the outbox sends the pending one and the sent one again (its very frame), in order
    assert store.needs_sending("01S") and not store.needs_sending("01D")
    entry = store.next_pending()
    assert entry is not None and (entry.message_id, entry.frame) == ("01S", '{"n":1}')

    # And its second ack ends the resend without moving anything back
    assert store.mark_sent("01S", 3) is False
    assert not store.needs_sending("01S")
    assert store.get("alice", "01S").status == MessageStatus.SENT  # type: ignore[union-attr]
    # And a refused resend is not sent again either, and stays sent
    store.mark_undelivered_for_resend()
    assert store.mark_failed("01S", "UNKNOWN_RECIPIENT: gone") is False
    assert not store.needs_sending("01S")
    assert store.next_pending() is not None and store.next_pending().message_id == "01P"  # type: ignore[union-attr]


def test_a_receipt_that_comes_before_our_other_devices_copy_is_applied_when_it_comes(
    store: HistoryStore,
) -> None:
    # Given bob's delivered receipt, then seen, for a message our phone sent him, whose
    # copy (docs/protocol.md §8) has not reached this device yet
    assert store.apply_receipt("bob", ["m-early"], MessageStatus.DELIVERED) == []
    assert store.apply_receipt("bob", ["m-early"], MessageStatus.SEEN) == []
    assert store.apply_receipt("bob", ["m-other"], MessageStatus.DELIVERED) == []
    # When the copy comes
    assert store.add_own_copy("bob", "m-early", "sent from the phone", 5, 10)
    # Then it is seen at once, not "sent" for ever; and nothing else moved
    held = store.get(store.me, "m-early")
    assert held is not None and held.status == MessageStatus.SEEN
    assert store.add_own_copy("bob", "m-late", "no receipt yet", 6, 11)
    late = store.get(store.me, "m-late")
    assert late is not None and late.status == MessageStatus.SENT
