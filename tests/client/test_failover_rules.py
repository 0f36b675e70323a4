"""docs/protocol.md §7 as the Python SDK decides it: where each message and `seen` mark was
stored, which directory news sends them again, and UNKNOWN_RECIPIENT after a failover.

The same rules run end to end on the local stack in tests/client/test_failover_client.py
and tests/client/test_peer_failover.py; docs/availability.md maps each rule to its test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_client import store as store_module
from messenger_client.failover import EpochChanges, moved_since
from messenger_client.store import HistoryStore, MessageStatus, StoredAt
from messenger_protocol.cells import Directory, ShardMap

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "history.sqlite3", me="alice")
    yield history
    history.close()


def directory(
    version: int, epochs: dict[str, str], cells: tuple[str, ...] = ("c0", "c1")
) -> Directory:
    urls = {cell: f"wss://{cell}.example/prod" for cell in ("c0", "c1")}
    return Directory(version, urls, ShardMap.even(list(cells), shards=4), epochs)


def home_of(cell: str, shard_map: ShardMap | None = None) -> str:
    """A user id whose home is `cell` in the two-cell map."""
    shards = shard_map or ShardMap.even(["c0", "c1"], shards=4)
    return next(f"u{n}" for n in range(1000) if shards.home_of(f"u{n}") == cell)


BOB = home_of("c1")
STORED = StoredAt("r1#1", "c1", 5)


# --- rule 3: a newer directory shows another epoch, or another home ------------------------


def test_a_newer_directory_with_another_epoch_for_the_storing_cell_sends_again() -> None:
    assert moved_since(STORED, directory(6, {"c0": "r0#1", "c1": "r2#2"}), BOB)


def test_a_newer_directory_with_the_same_epoch_sends_nothing() -> None:
    # Given c0 failed over, not c1 which stored the message
    assert not moved_since(STORED, directory(6, {"c0": "r9#2", "c1": "r1#1"}), BOB)


def test_a_newer_directory_naming_another_home_for_the_recipient_sends_again() -> None:
    # Given a directory whose shard map moved every user to c0
    moved_home = directory(6, {"c0": "r0#1", "c1": "r1#1"}, cells=("c0",))
    assert moved_home.home_of(BOB) == "c0"
    assert moved_since(STORED, moved_home, BOB)


def test_a_directory_no_newer_than_the_one_known_at_the_ack_sends_nothing() -> None:
    # A stale copy (a cache) with an older epoch would otherwise resend on every look
    assert not moved_since(STORED, directory(5, {"c1": "r1#0"}), BOB)
    assert not moved_since(STORED, directory(4, {"c1": "r1#0"}), BOB)


def test_a_moved_url_counts_when_the_directory_names_no_epochs() -> None:
    v11 = directory(6, {})
    assert not moved_since(STORED, v11, BOB)
    assert moved_since(STORED, v11, BOB, moved=frozenset({"c1"}))
    # And a message stored before any directory is judged by its recipient's cell
    assert moved_since(StoredAt("e", None, None), v11, BOB, moved=frozenset({"c1"}))
    assert not moved_since(StoredAt("e", None, None), v11, BOB, moved=frozenset({"c0"}))


# --- messages keep their ack's epoch and cell -------------------------------------------------


def test_each_message_keeps_where_its_last_ack_stored_it_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    history = HistoryStore(path, me="alice")
    history.add_outgoing("bob", "01A", "a", 1, frame='{"a":1}')
    history.add_outgoing("bob", "01B", "b", 2, frame='{"b":1}')
    # Given both acked in c1 at epoch r1#1, then 01A resent and acked again at r2#2
    history.mark_sent("01A", 10, StoredAt("r1#1", "c1", 5))
    history.mark_sent("01B", 11, StoredAt("r1#1", "c1", 5))
    assert history.mark_undelivered_for_resend(lambda peer, stored: stored.epoch == "r1#1") == [
        "01A",
        "01B",
    ]
    history.mark_sent("01B", 11, StoredAt("r1#1", "c1", 5))  # its resend answered at once
    history.mark_sent("01A", 12, StoredAt("r2#2", "c1", 6))
    history.close()

    # When the client starts again, and a directory shows c1 at r2#2
    history = HistoryStore(path, me="alice")
    news = directory(6, {"c1": "r2#2"})
    marked = history.mark_undelivered_for_resend(
        lambda peer, stored: moved_since(stored, news, BOB)
    )

    # Then only the message acked at the old epoch goes again
    assert marked == ["01B"]
    assert history.needs_sending("01B") and not history.needs_sending("01A")
    history.close()


# --- seen marks until seenStored --------------------------------------------------------------


def read_two(store: HistoryStore) -> None:
    store.add_incoming("bob", "01X", "x", 1, 1)
    store.add_incoming("bob", "01Y", "y", 2, 2)
    assert store.mark_read("bob") == ["01X", "01Y"]


def test_a_seen_mark_not_answered_goes_again_on_the_next_connection(store: HistoryStore) -> None:
    # Given two marks sent, and only the first answered seenStored
    read_two(store)
    store.mark_seen_reported("bob", ["01X", "01Y"])
    store.mark_seen_stored("bob", ["01X"], StoredAt("r0#1", "c0", 3))
    assert store.unreported_seen() == {}
    assert store.resends_outstanding().seen_marks == 1

    # When the connection ends
    assert store.unanswered_seen_again() == 1

    # Then the unanswered one goes again, the answered one does not
    assert store.unreported_seen() == {"bob": ["01Y"]}


def test_stored_seen_marks_go_again_under_the_rules_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    history = HistoryStore(path, me="alice")
    read_two(history)
    history.mark_seen_reported("bob", ["01X", "01Y"])
    history.mark_seen_stored("bob", ["01X", "01Y"], StoredAt("r0#1", "c0", 3))
    history.close()

    # When, after a restart, the directory shows another epoch for c0 (bob's home)
    history = HistoryStore(path, me="alice")
    bob_in_c0 = home_of("c0")
    news = directory(4, {"c0": "r5#2"})
    marked = history.mark_seen_for_resend(
        lambda sender, stored: moved_since(stored, news, bob_in_c0)
    )

    # Then both marks go again, in one markSeen, and are kept until answered again
    assert marked == 2
    assert history.unreported_seen() == {"bob": ["01X", "01Y"]}
    history.mark_seen_reported("bob", ["01X", "01Y"])
    assert history.resends_outstanding().seen_marks == 2
    history.mark_seen_stored("bob", ["01X", "01Y"], StoredAt("r5#2", "c0", 4))
    assert history.resends_outstanding().seen_marks == 0
    # And a syncDone's new epoch (rule 1) sends every stored mark again
    assert history.mark_seen_for_resend() == 2
    history.close()


def test_a_seen_stored_for_marks_never_sent_changes_nothing(store: HistoryStore) -> None:
    read_two(store)
    store.mark_seen_stored("bob", ["01X"], StoredAt("r0#1", "c0", 3))
    assert store.mark_seen_for_resend() == 0
    assert store.unreported_seen() == {"bob": ["01X", "01Y"]}


# --- UNKNOWN_RECIPIENT after a failover -------------------------------------------------------


def test_unknown_recipient_is_kept_within_an_hour_of_the_cells_epoch_change(
    tmp_path: Path,
) -> None:
    history = HistoryStore(tmp_path / "h.sqlite3", me="alice")
    epochs = EpochChanges(history)
    # Given c1 first seen at r1#1 (no change: we do not know since when), then at r2#2
    assert not epochs.note("c1", "r1#1", now_ms=1_000)
    assert not epochs.keeps_unknown_recipient("c1", now_ms=2_000)
    assert epochs.note("c1", "r2#2", now_ms=10_000)

    # Then a refusal within the hour is kept, one later is final; c0 never changed
    assert epochs.keeps_unknown_recipient("c1", now_ms=10_000 + HOUR_MS)
    assert not epochs.keeps_unknown_recipient("c1", now_ms=10_001 + HOUR_MS)
    assert not epochs.keeps_unknown_recipient("c0", now_ms=10_000)
    # And what was seen survives a restart
    assert EpochChanges(history).keeps_unknown_recipient("c1", now_ms=20_000)
    history.close()


def test_a_kept_message_is_tried_again_backing_off_for_up_to_a_day(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000]
    monkeypatch.setattr(store_module, "_now_ms", lambda: now[0])
    store.add_outgoing("bob", "01K", "k", 1, frame="{}")
    store.add_outgoing("bob", "01L", "l", 2, frame="{}")
    backoff = {"base_ms": 3_000, "cap_ms": 600_000, "retry_for_ms": DAY_MS}

    # When 01K is refused and kept: it waits, and the next message goes meanwhile
    assert store.keep_for_retry("01K", **backoff)
    entry = store.next_pending()
    assert entry is not None and entry.message_id == "01L"
    assert store.next_retry_at() == now[0] + 3_000
    assert store.resends_outstanding().kept == 1

    # Then its waits grow with the time since the first refusal, up to the cap
    now[0] += 3_000
    entry = store.next_pending()
    assert entry is not None and entry.message_id == "01K"
    assert store.keep_for_retry("01K", **backoff)
    assert store.next_retry_at() == now[0] + 3_000
    now[0] += 100_000
    assert store.keep_for_retry("01K", **backoff)
    assert store.next_retry_at() == now[0] + 103_000
    now[0] += 10 * HOUR_MS
    assert store.keep_for_retry("01K", **backoff)
    assert store.next_retry_at() == now[0] + 600_000

    # And a day after the first refusal it is refused for good
    now[0] = 1_000_000 + DAY_MS
    assert not store.keep_for_retry("01K", **backoff)
    assert store.mark_failed("01K", "UNKNOWN_RECIPIENT: no such user")
    assert store.get("alice", "01K").status == MessageStatus.FAILED  # type: ignore[union-attr]
    assert store.next_retry_at() is None


def test_an_ack_ends_the_retries_of_a_kept_message(store: HistoryStore) -> None:
    store.add_outgoing("bob", "01K", "k", 1, frame="{}")
    assert store.keep_for_retry("01K", base_ms=1, cap_ms=1, retry_for_ms=DAY_MS)
    assert store.mark_sent("01K", 5, StoredAt("r2#2", "c1", 6))
    assert store.next_retry_at() is None
    assert store.resends_outstanding().kept == 0
