"""The local history (SQLite, one file per profile): the client is the source of truth.

The server forgets a message once it is acknowledged, so everything a person can see
again lives here: conversations, messages with their status, the outbox (the exact
frame of every message without a `delivered` receipt yet: after a failover it goes
again, byte for byte, docs/protocol.md §7), and what could not be read: held as the
ciphertext that came, never dropped (the server forgets a message once acked, so the
client must keep it first), with why (`HoldReason`): the sender's keys changed (it opens
once the user trusts the new keys), or it is unreadable (damaged, or sealed for another
device: trusting keys will not open it).
Nothing here is sent anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    sender         TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    peer           TEXT NOT NULL,            -- the other person in the conversation
    outgoing       INTEGER NOT NULL,
    text           TEXT NOT NULL,
    sent_at        INTEGER NOT NULL,         -- the sender's clock (ms): the display order
    server_ts      INTEGER,                  -- when the server stored it, once known
    status         TEXT NOT NULL,
    seen_reported  INTEGER NOT NULL DEFAULT 0,  -- incoming: markSeen went out
    seen_epoch     TEXT,                     -- incoming: its seenStored's epoch (§7)
    seen_cell      TEXT,                     -- incoming: the cell that stored the receipt
    seen_dv        INTEGER,                  -- incoming: the directory version known then
    frame          TEXT,                     -- outgoing, until delivered: the frame to resend
    resend         INTEGER NOT NULL DEFAULT 0,  -- outgoing and sent: to send again (§7)
    error          TEXT,                     -- outgoing and failed: why
    ack_epoch      TEXT,                     -- outgoing: the epoch of its last ack (§7)
    ack_cell       TEXT,                     -- outgoing: the cell that stored it
    ack_dv         INTEGER,                  -- outgoing: the directory version known then
    retry_at       INTEGER,                  -- outgoing, kept after UNKNOWN_RECIPIENT: next try
    retry_until    INTEGER,                  -- ... and the last (ms)
    stored_at      INTEGER NOT NULL,
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (peer, sent_at, message_id);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (status);
CREATE TABLE IF NOT EXISTS rejected (
    sender      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    sent_at     INTEGER,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT,                        -- held: the ciphertext, to open after `trust`
    nonce       TEXT,
    server_ts   INTEGER,
    held_because TEXT,                       -- held: a HoldReason
    copy        TEXT,                        -- held, sealed for devices (§8): its SealedCopy
    PRIMARY KEY (sender, message_id)
);
CREATE TABLE IF NOT EXISTS early_receipts (  -- for our messages not here yet (§8)
    peer        TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (peer, message_id)
);
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""


class MessageStatus(StrEnum):
    """Outgoing: pending → sent → delivered → seen (or failed). Incoming: received → seen."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    SEEN = "seen"
    FAILED = "failed"
    RECEIVED = "received"


# How our messages' status shows in a terminal (the CLI and the chat).
STATUS_MARKS = {
    MessageStatus.PENDING: "…",
    MessageStatus.SENT: "✓",
    MessageStatus.DELIVERED: "✓✓",
    MessageStatus.SEEN: "✓✓ seen",
    MessageStatus.FAILED: "✗ not sent",
}


class HoldReason(StrEnum):
    """Why a message is held (kept as the ciphertext that came)."""

    # The sender's keys changed: it opens once the user trusts the new ones.
    KEY_CHANGED = "key_changed"
    # It does not open with the keys we trust (damaged, or sealed for another device):
    # trusting keys will not open it.
    UNREADABLE = "unreadable"


def held_notice(sender: str, count: int, because: HoldReason) -> str:
    """What a terminal says about `count` messages from `sender` held `because`."""
    messages = "1 message" if count == 1 else f"{count} messages"
    if because is HoldReason.UNREADABLE:
        return (
            f"{messages} from {sender} could not be opened (damaged or not meant for this device)"
        )
    verb = "is" if count == 1 else "are"
    return (
        f"{messages} from {sender} {verb} held until you verify {sender}'s new safety number"
        f" (compare `messenger fingerprint {sender}` with {sender}, then"
        f" `messenger trust {sender} --fingerprint NUMBER`)"
    )


def held_notices(held: Iterable[HeldMessage]) -> list[str]:
    """One `held_notice` per sender and reason, in the order they first come in `held`."""
    counts: dict[tuple[str, HoldReason], int] = {}
    for message in held:
        key = (message.sender, message.held_because)
        counts[key] = counts.get(key, 0) + 1
    return [held_notice(sender, count, because) for (sender, because), count in counts.items()]


# Receipts and acks may arrive in any order (a `delivered` receipt can beat the `ack`
# of a resend): a status only ever moves forward.
_OUTGOING_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.SEEN: 3,
}
_RANK_SQL = (
    "CASE status "
    + " ".join(f"WHEN '{status.value}' THEN {rank}" for status, rank in _OUTGOING_RANK.items())
    + " ELSE 99 END"
)


@dataclass(frozen=True)
class StoredMessage:
    """One message of a conversation, as the history holds it."""

    peer: str
    sender: str
    message_id: str
    text: str
    sent_at: int
    status: MessageStatus
    outgoing: bool
    server_ts: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class StoredAt:
    """Where the server stored one of our frames (docs/protocol.md §7): the `epoch` of its
    answer (`ack`, `seenStored`), the cell that stored it (the recipient's home by our
    directory then; None without a directory), and the directory version we knew then."""

    epoch: str | None
    cell: str | None
    directory_version: int | None


@dataclass(frozen=True)
class Outstanding:
    """Frames sent and not answered yet (`HistoryStore.resends_outstanding`)."""

    resends: int  # messages sent again after a failover (§7), due now
    seen_marks: int  # `seen` marks without their `seenStored`
    kept: int  # messages kept after UNKNOWN_RECIPIENT, due later

    @property
    def due(self) -> int:
        return self.resends + self.seen_marks


@dataclass(frozen=True)
class OutboxEntry:
    """A message the server has not acknowledged yet, and the exact frame that carries it."""

    message_id: str
    peer: str
    frame: str


@dataclass(frozen=True)
class Conversation:
    peer: str
    last_sent_at: int
    messages: int
    unread: int


@dataclass(frozen=True)
class Rejection:
    """A message we were sent but could not read (its text is unknown, by nature).

    `held_because`: its ciphertext is kept, and why (None: not kept)."""

    sender: str
    message_id: str
    sent_at: int | None
    reason: str
    held_because: HoldReason | None = None

    @property
    def held(self) -> bool:
        return self.held_because is not None


@dataclass(frozen=True)
class SealedCopy:
    """What a message sealed for several devices (docs/protocol.md §8) adds to its body:
    the sending device, this device's copy of the key, and `to` on a copy of our own."""

    from_device: str
    key: str
    key_nonce: str
    to: str | None = None

    def to_json(self) -> str:
        return json.dumps([self.from_device, self.key, self.key_nonce, self.to])

    @classmethod
    def from_json(cls, text: str | None) -> SealedCopy | None:
        if text is None:
            return None
        from_device, key, key_nonce, to = json.loads(text)
        return cls(from_device, key, key_nonce, to)


@dataclass(frozen=True)
class HeldMessage:
    """The ciphertext of a message that did not open, and why (`held_because`)."""

    sender: str
    message_id: str
    sent_at: int
    server_ts: int | None
    body: str
    nonce: str
    held_because: HoldReason
    copy: SealedCopy | None = None


def _held_because(row: sqlite3.Row) -> HoldReason:
    # Older SDKs held messages only until the sender's keys were trusted, and wrote no reason.
    return HoldReason(row["held_because"] or HoldReason.KEY_CHANGED)


def _now_ms() -> int:
    return int(time.time() * 1000)


class HistoryStore:
    """The profile's SQLite history. `me` is our user id (the sender of outgoing messages)."""

    def __init__(self, path: Path | str, me: str) -> None:
        self.me = me
        if str(path) != ":memory:":
            # Created 0600 before SQLite opens it: the history is as private as the keys.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        # Two processes may share a profile (`read --watch` and `send`): WAL and a busy
        # timeout let them take turns instead of failing.
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def close(self) -> None:
        self._db.close()

    def _add_missing_columns(self) -> None:
        """A history made by an older SDK gets the columns added since (nothing else moves)."""
        added = {
            "messages": {
                "resend": "INTEGER NOT NULL DEFAULT 0",
                "seen_epoch": "TEXT",
                "seen_cell": "TEXT",
                "seen_dv": "INTEGER",
                "ack_epoch": "TEXT",
                "ack_cell": "TEXT",
                "ack_dv": "INTEGER",
                "retry_at": "INTEGER",
                "retry_until": "INTEGER",
            },
            "rejected": {
                "body": "TEXT",
                "nonce": "TEXT",
                "server_ts": "INTEGER",
                "held_because": "TEXT",
                "copy": "TEXT",
            },
        }
        for table, new_columns in added.items():
            columns = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, declaration in new_columns.items():
                if name not in columns:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- messages -------------------------------------------------------------------

    def add_outgoing(
        self, peer: str, message_id: str, text: str, sent_at: int, frame: str
    ) -> StoredMessage:
        """Record a message we are about to send, with its frame, as pending (the outbox)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (sender, message_id, peer, outgoing, text, sent_at,"
                " status, frame, stored_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (self.me, message_id, peer, text, sent_at, MessageStatus.PENDING, frame, _now_ms()),
            )
        return StoredMessage(
            peer, self.me, message_id, text, sent_at, MessageStatus.PENDING, outgoing=True
        )

    def add_incoming(
        self, sender: str, message_id: str, text: str, sent_at: int, server_ts: int | None
    ) -> bool:
        """Store a received message; False if `(sender, message_id)` is already here."""
        with self._transaction() as db:
            return _insert_message(
                db, sender, sender, message_id, text, sent_at, server_ts, outgoing=False
            )

    def add_own_copy(
        self, peer: str, message_id: str, text: str, sent_at: int, server_ts: int | None
    ) -> bool:
        """Store a message one of our other devices sent to `peer` (docs/protocol.md §8):
        ours, already stored by the server (sent), with no frame to send; its receipts move
        it on as any of ours. False if we hold it already."""
        with self._transaction() as db:
            stored = _insert_message(
                db, self.me, peer, message_id, text, sent_at, server_ts, outgoing=True
            )
            if stored:
                _apply_early_receipt(db, self.me, peer, message_id)
            return stored

    def replace_frame(self, message_id: str, frame: str) -> None:
        """The frame of a pending message, sealed again for the device lists the server
        holds now (after STALE_DEVICES, §8): the same messageId, text and sentAt."""
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET frame = ? WHERE sender = ? AND message_id = ?"
                " AND frame IS NOT NULL",
                (frame, self.me, message_id),
            )

    def has_message(self, sender: str, message_id: str) -> bool:
        """Whether we hold `(sender, message_id)`, read or rejected: duplicates are dropped."""
        row = self._db.execute(
            "SELECT 1 FROM messages WHERE sender = ? AND message_id = ?"
            " UNION ALL SELECT 1 FROM rejected WHERE sender = ? AND message_id = ?",
            (sender, message_id, sender, message_id),
        ).fetchone()
        return row is not None

    def get(self, sender: str, message_id: str) -> StoredMessage | None:
        row = self._db.execute(
            "SELECT * FROM messages WHERE sender = ? AND message_id = ?", (sender, message_id)
        ).fetchone()
        return _message(row) if row else None

    def history(self, peer: str, limit: int | None = None) -> list[StoredMessage]:
        """A conversation in display order (sentAt, then messageId), the latest `limit`."""
        query = "SELECT * FROM messages WHERE peer = ? ORDER BY sent_at DESC, message_id DESC"
        parameters: tuple[object, ...] = (peer,)
        if limit is not None:
            query += " LIMIT ?"
            parameters += (limit,)
        return [_message(row) for row in reversed(self._db.execute(query, parameters).fetchall())]

    def conversations(self) -> list[Conversation]:
        """Every conversation, the most recent first."""
        rows = self._db.execute(
            "SELECT peer, MAX(sent_at) AS last_sent_at, COUNT(*) AS messages,"
            " SUM(outgoing = 0 AND status = ?) AS unread"
            " FROM messages GROUP BY peer ORDER BY last_sent_at DESC",
            (MessageStatus.RECEIVED,),
        ).fetchall()
        return [
            Conversation(row["peer"], row["last_sent_at"], row["messages"], row["unread"])
            for row in rows
        ]

    def peers_written_to(self, limit: int) -> list[str]:
        """The people we sent a message to, the most recent first: our contacts."""
        rows = self._db.execute(
            "SELECT peer FROM messages WHERE outgoing = 1"
            " GROUP BY peer ORDER BY MAX(sent_at) DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [row["peer"] for row in rows]

    def last_sent_at(self) -> int:
        """The latest sentAt we gave a message (to keep ours strictly increasing)."""
        row = self._db.execute(
            "SELECT MAX(sent_at) FROM messages WHERE sender = ?", (self.me,)
        ).fetchone()
        return int(row[0] or 0)

    # --- the outbox and status --------------------------------------------------------

    def next_pending(self, now_ms: int | None = None) -> OutboxEntry | None:
        """The oldest message to send: not acknowledged by the server yet, or marked to go
        again after a failover, and not waiting for a later try (`retry_at`). Sent one at
        a time, in the order they were written."""
        row = self._db.execute(
            "SELECT message_id, peer, frame FROM messages WHERE sender = ?"
            " AND (status = ? OR resend = 1) AND (retry_at IS NULL OR retry_at <= ?)"
            " ORDER BY rowid LIMIT 1",
            (self.me, MessageStatus.PENDING, _now_ms() if now_ms is None else now_ms),
        ).fetchone()
        return OutboxEntry(row["message_id"], row["peer"], row["frame"]) if row else None

    def next_retry_at(self) -> int | None:
        """When the earliest message kept for a later try (`keep_for_retry`) is due (ms)."""
        row = self._db.execute(
            "SELECT MIN(retry_at) FROM messages WHERE sender = ? AND retry_at IS NOT NULL"
            " AND (status = ? OR resend = 1)",
            (self.me, MessageStatus.PENDING),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def keep_for_retry(
        self, message_id: str, *, base_ms: int, cap_ms: int, retry_for_ms: int
    ) -> bool:
        """Keep a refused message to try again later, for up to `retry_for_ms` after its
        first such refusal (§7, UNKNOWN_RECIPIENT after a failover), backing off: each wait
        is the time since that first refusal, between `base_ms` and `cap_ms`. False once
        that is over (the refusal is then final)."""
        now = _now_ms()
        with self._transaction() as db:
            row = db.execute(
                "SELECT retry_until FROM messages WHERE sender = ? AND message_id = ?",
                (self.me, message_id),
            ).fetchone()
            if row is None:
                return False
            until = row["retry_until"] if row["retry_until"] is not None else now + retry_for_ms
            if now >= until:
                return False
            delay = min(cap_ms, max(base_ms, now - (until - retry_for_ms)))
            db.execute(
                "UPDATE messages SET retry_at = ?, retry_until = ?"
                " WHERE sender = ? AND message_id = ?",
                (min(now + delay, until), until, self.me, message_id),
            )
        return True

    def resends_outstanding(self) -> Outstanding:
        """What was sent and is still waiting for its answer beyond the outbox's head:
        messages marked to go again (§7), kept for a later try, and `seen` marks sent
        without their `seenStored` yet."""
        now = _now_ms()
        resends, kept = self._db.execute(
            "SELECT COALESCE(SUM(retry_at IS NULL OR retry_at <= ?), 0),"
            " COALESCE(SUM(retry_at > ?), 0) FROM messages WHERE sender = ?"
            " AND (resend = 1 OR (status = ? AND retry_at IS NOT NULL))",
            (now, now, self.me, MessageStatus.PENDING),
        ).fetchone()
        (marks,) = self._db.execute(
            "SELECT COUNT(*) FROM messages WHERE outgoing = 0 AND status = ?"
            " AND seen_reported = 1 AND seen_epoch IS NULL",
            (MessageStatus.SEEN,),
        ).fetchone()
        return Outstanding(int(resends), int(marks), int(kept))

    def pending_count(self) -> int:
        """How many of our messages the server has not acknowledged yet."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM messages WHERE sender = ? AND status = ?",
            (self.me, MessageStatus.PENDING),
        ).fetchone()
        return int(row[0])

    def needs_sending(self, message_id: str) -> bool:
        """Whether our message must go (again) to the server: pending, or marked to resend."""
        row = self._db.execute(
            "SELECT 1 FROM messages WHERE sender = ? AND message_id = ?"
            " AND (status = ? OR resend = 1)",
            (self.me, message_id, MessageStatus.PENDING),
        ).fetchone()
        return row is not None

    def mark_sent(
        self, message_id: str, server_ts: int | None, stored: StoredAt | None = None
    ) -> bool:
        """The server's `ack`: the message is stored there (its frame is kept until the
        `delivered` receipt), at `stored` (§7: the ack's epoch, the cell, the directory
        version; a resend's ack replaces them). True if that moved it from pending to sent."""
        stored = stored or StoredAt(None, None, None)
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET ack_epoch = ?, ack_cell = ?, ack_dv = ?, retry_at = NULL,"
                " retry_until = NULL WHERE sender = ? AND message_id = ? AND frame IS NOT NULL",
                (stored.epoch, stored.cell, stored.directory_version, self.me, message_id),
            )
            cursor = db.execute(
                "UPDATE messages SET status = ?, server_ts = ?, resend = 0"
                " WHERE sender = ? AND message_id = ? AND status = ?",
                (MessageStatus.SENT, server_ts, self.me, message_id, MessageStatus.PENDING),
            )
            if cursor.rowcount == 0:
                self._end_resend(db, message_id)  # the ack of a resend: sent already
        return cursor.rowcount == 1

    def mark_failed(self, message_id: str, error: str) -> bool:
        """The server refused the message for good: it leaves the outbox. True if that made
        it failed; a refused resend stays as it was (sent), and is not sent again."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE messages SET status = ?, error = ?, frame = NULL, resend = 0,"
                " retry_at = NULL, retry_until = NULL"
                " WHERE sender = ? AND message_id = ? AND status = ?",
                (MessageStatus.FAILED, error, self.me, message_id, MessageStatus.PENDING),
            )
            if cursor.rowcount == 0:
                self._end_resend(db, message_id)
        return cursor.rowcount == 1

    def _end_resend(self, db: sqlite3.Connection, message_id: str) -> None:
        """A resend was answered (acked or refused): nothing more to send for it."""
        db.execute(
            "UPDATE messages SET resend = 0, retry_at = NULL, retry_until = NULL"
            " WHERE sender = ? AND message_id = ?",
            (self.me, message_id),
        )

    def mark_undelivered_for_resend(
        self, which: Callable[[str, StoredAt], bool] | None = None
    ) -> list[str]:
        """docs/protocol.md §7, after a failover: every message the server stored (sent) but
        whose `delivered` receipt has not come goes again, the same frame; their ids.
        `which`: only those it accepts, given their recipient and where they were stored."""
        with self._transaction() as db:
            ids = [
                row["message_id"]
                for row in db.execute(
                    "SELECT message_id, peer, ack_epoch, ack_cell, ack_dv FROM messages"
                    " WHERE sender = ? AND status = ? AND frame IS NOT NULL AND resend = 0"
                    " ORDER BY rowid",
                    (self.me, MessageStatus.SENT),
                )
                if which is None
                or which(row["peer"], StoredAt(row["ack_epoch"], row["ack_cell"], row["ack_dv"]))
            ]
            db.executemany(
                "UPDATE messages SET resend = 1 WHERE sender = ? AND message_id = ?",
                [(self.me, message_id) for message_id in ids],
            )
        return ids

    def apply_receipt(
        self, peer: str, message_ids: Iterable[str], status: MessageStatus
    ) -> list[str]:
        """Move our messages to `peer` forward to `status`; the ids that changed. A receipt
        for one of ours not here yet (one another of our devices sent, docs/protocol.md §8:
        its copy and the peer's receipt travel apart, and the receipt may come first) is
        kept, and applied when the copy comes (`add_own_copy`)."""
        changed: list[str] = []
        with self._transaction() as db:
            for message_id in dict.fromkeys(message_ids):
                if _move_on(db, self.me, peer, message_id, status):
                    changed.append(message_id)
                elif not db.execute(
                    "SELECT 1 FROM messages WHERE sender = ? AND message_id = ?",
                    (self.me, message_id),
                ).fetchone():
                    _keep_early_receipt(db, peer, message_id, status)
        return changed

    # --- seen -----------------------------------------------------------------------

    def mark_read(self, peer: str) -> list[str]:
        """Mark every received message from `peer` seen; their ids (markSeen to send)."""
        with self._transaction() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT message_id FROM messages WHERE sender = ? AND outgoing = 0"
                    " AND status = ? ORDER BY sent_at, message_id",
                    (peer, MessageStatus.RECEIVED),
                )
            ]
            db.execute(
                "UPDATE messages SET status = ? WHERE sender = ? AND outgoing = 0 AND status = ?",
                (MessageStatus.SEEN, peer, MessageStatus.RECEIVED),
            )
        return ids

    def unreported_seen(self) -> dict[str, list[str]]:
        """Messages read here whose `markSeen` has not gone out yet (or goes again), by
        sender."""
        pending: dict[str, list[str]] = {}
        for row in self._db.execute(
            "SELECT sender, message_id FROM messages WHERE outgoing = 0 AND status = ?"
            " AND seen_reported = 0 ORDER BY sent_at, message_id",
            (MessageStatus.SEEN,),
        ):
            pending.setdefault(row["sender"], []).append(row["message_id"])
        return pending

    def mark_seen_reported(self, sender: str, message_ids: Iterable[str]) -> None:
        """The `markSeen` went out; the mark is kept until its `seenStored`."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE messages SET seen_reported = 1, seen_epoch = NULL"
                " WHERE sender = ? AND message_id = ?",
                [(sender, message_id) for message_id in message_ids],
            )

    def mark_seen_stored(self, sender: str, message_ids: Iterable[str], stored: StoredAt) -> None:
        """`seenStored`: the `seen` receipt of these marks is queued for `sender`, at `stored`."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE messages SET seen_epoch = ?, seen_cell = ?, seen_dv = ?"
                " WHERE sender = ? AND message_id = ? AND outgoing = 0 AND seen_reported = 1",
                [
                    (stored.epoch, stored.cell, stored.directory_version, sender, message_id)
                    for message_id in message_ids
                ],
            )

    def unanswered_seen_again(self) -> int:
        """A new connection: marks that went out and were never answered go again."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE messages SET seen_reported = 0 WHERE outgoing = 0 AND status = ?"
                " AND seen_reported = 1 AND seen_epoch IS NULL",
                (MessageStatus.SEEN,),
            )
        return cursor.rowcount

    def mark_seen_for_resend(self, which: Callable[[str, StoredAt], bool] | None = None) -> int:
        """§7: the `seen` marks stored (answered `seenStored`) go again, the same frame;
        `which`: only those it accepts, given their sender and where they were stored.
        How many."""
        with self._transaction() as db:
            keys = [
                (row["sender"], row["message_id"])
                for row in db.execute(
                    "SELECT sender, message_id, seen_epoch, seen_cell, seen_dv FROM messages"
                    " WHERE outgoing = 0 AND status = ? AND seen_reported = 1"
                    " AND seen_epoch IS NOT NULL",
                    (MessageStatus.SEEN,),
                )
                if which is None
                or which(
                    row["sender"], StoredAt(row["seen_epoch"], row["seen_cell"], row["seen_dv"])
                )
            ]
            db.executemany(
                "UPDATE messages SET seen_reported = 0, seen_epoch = NULL"
                " WHERE sender = ? AND message_id = ?",
                keys,
            )
        return len(keys)

    # --- what could not be read ---------------------------------------------------------

    def add_rejected(
        self,
        sender: str,
        message_id: str,
        sent_at: int | None,
        reason: str,
        *,
        held: tuple[str, str, int | None] | None = None,
        held_because: HoldReason = HoldReason.KEY_CHANGED,
        copy: SealedCopy | None = None,
    ) -> bool:
        """Remember a message that did not open (no text: there is none we could trust).
        `held`: its (body, nonce, server_ts), kept (`held_because`: why), with `copy` for
        one sealed for several devices."""
        body, nonce, server_ts = held if held is not None else (None, None, None)
        because = None if held is None else held_because.value
        sealed = None if held is None or copy is None else copy.to_json()
        row = (sender, message_id, sent_at, reason, _now_ms(), body, nonce, server_ts, because)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO rejected (sender, message_id, sent_at, reason, at,"
                " body, nonce, server_ts, held_because, copy)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, sealed),
            )
        return cursor.rowcount == 1

    def rejected(self, sender: str | None = None) -> list[Rejection]:
        return [
            Rejection(
                row["sender"],
                row["message_id"],
                row["sent_at"],
                row["reason"],
                _held_because(row) if row["body"] is not None else None,
            )
            for row in self._rejected_rows(sender, order_by="at")
        ]

    def held(self, sender: str | None = None) -> list[HeldMessage]:
        """The messages held (for either reason), in display order."""
        return [
            HeldMessage(
                row["sender"],
                row["message_id"],
                row["sent_at"] or 0,
                row["server_ts"],
                row["body"],
                row["nonce"],
                _held_because(row),
                SealedCopy.from_json(row["copy"]),
            )
            for row in self._rejected_rows(sender, held_only=True, order_by="sent_at, message_id")
        ]

    def _rejected_rows(
        self, sender: str | None, *, order_by: str, held_only: bool = False
    ) -> list[sqlite3.Row]:
        """Rows of `rejected` (only the held ones: with their body), of one sender or all."""
        conditions = ["body IS NOT NULL AND nonce IS NOT NULL"] if held_only else []
        parameters: tuple[str, ...] = ()
        if sender is not None:
            conditions.append("sender = ?")
            parameters = (sender,)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT * FROM rejected{where} ORDER BY {order_by}"
        return self._db.execute(query, parameters).fetchall()

    def mark_unreadable(self, held: HeldMessage, reason: str) -> None:
        """A held message did not open with the keys the user trusts: it is unreadable."""
        with self._transaction() as db:
            db.execute(
                "UPDATE rejected SET held_because = ?, reason = ?"
                " WHERE sender = ? AND message_id = ?",
                (HoldReason.UNREADABLE.value, reason, held.sender, held.message_id),
            )

    def release_held(self, held: HeldMessage, text: str) -> None:
        """A held message opened: it joins the history, in one step, and is held no more."""
        to = held.copy.to if held.copy is not None and held.sender == self.me else None
        peer = held.sender if to is None else to
        with self._transaction() as db:
            _insert_message(
                db,
                held.sender,
                peer,
                held.message_id,
                text,
                held.sent_at,
                held.server_ts,
                outgoing=to is not None,
            )
            db.execute(
                "DELETE FROM rejected WHERE sender = ? AND message_id = ?",
                (held.sender, held.message_id),
            )

    # --- what we remember about the server ------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


# An early receipt whose copy never came (one we could not open, say) is forgotten after
# the server's longest hold of a message.
EARLY_RECEIPT_DAYS = 30


def _move_on(
    db: sqlite3.Connection, me: str, peer: str, message_id: str, status: MessageStatus
) -> bool:
    """One of our messages to `peer` forward to `status` (never back); True if it moved."""
    cursor = db.execute(
        f"UPDATE messages SET status = ?, frame = NULL, resend = 0 WHERE sender = ? AND"
        f" message_id = ? AND peer = ? AND {_RANK_SQL} < ?",
        (status, me, message_id, peer, _OUTGOING_RANK[status]),
    )
    return cursor.rowcount > 0


def _keep_early_receipt(
    db: sqlite3.Connection, peer: str, message_id: str, status: MessageStatus
) -> None:
    now = _now_ms()
    db.execute("DELETE FROM early_receipts WHERE at < ?", (now - EARLY_RECEIPT_DAYS * 86_400_000,))
    held = db.execute(
        "SELECT status FROM early_receipts WHERE peer = ? AND message_id = ?", (peer, message_id)
    ).fetchone()
    if held is None or _OUTGOING_RANK[MessageStatus(held[0])] < _OUTGOING_RANK[status]:
        db.execute(
            "INSERT OR REPLACE INTO early_receipts (peer, message_id, status, at)"
            " VALUES (?, ?, ?, ?)",
            (peer, message_id, status, now),
        )


def _apply_early_receipt(db: sqlite3.Connection, me: str, peer: str, message_id: str) -> None:
    held = db.execute(
        "SELECT status FROM early_receipts WHERE peer = ? AND message_id = ?", (peer, message_id)
    ).fetchone()
    if held is not None:
        _move_on(db, me, peer, message_id, MessageStatus(held[0]))
        db.execute(
            "DELETE FROM early_receipts WHERE peer = ? AND message_id = ?", (peer, message_id)
        )


def _insert_message(
    db: sqlite3.Connection,
    sender: str,
    peer: str,
    message_id: str,
    text: str,
    sent_at: int,
    server_ts: int | None,
    *,
    outgoing: bool,
) -> bool:
    """Store a message the server already holds, once: one received from `sender`, or
    (`outgoing`) a copy of one our other devices sent to `peer`, docs/protocol.md §8.
    False if `(sender, message_id)` is here already."""
    status = MessageStatus.SENT if outgoing else MessageStatus.RECEIVED
    cursor = db.execute(
        "INSERT OR IGNORE INTO messages (sender, message_id, peer, outgoing, text,"
        " sent_at, server_ts, status, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sender, message_id, peer, int(outgoing), text, sent_at, server_ts, status, _now_ms()),
    )
    return cursor.rowcount == 1


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        peer=row["peer"],
        sender=row["sender"],
        message_id=row["message_id"],
        text=row["text"],
        sent_at=row["sent_at"],
        status=MessageStatus(row["status"]),
        outgoing=bool(row["outgoing"]),
        server_ts=row["server_ts"],
        error=row["error"],
    )
