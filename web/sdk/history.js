// The local history: the client is the source of truth (docs/protocol.md §7), as
// client/messenger_client/store.py is for the Python SDK. Everything lives in memory and
// is written through to a storage backend (IndexedDB in a browser, memory in tests); a
// write is awaited before the server hears about it (store before ack).
//
// A message record: {sender, peer, messageId, outgoing, text, sentAt, serverTs, status,
// read, seenReported, frame, resend, error, stored, seenStored, retryAt, retryUntil}.
// `stored`: where the last `ack` of our message says it was stored (failover.js,
// `storedAt`); `seenStored`: the same of the `seenStored` answering our `seen` mark, which
// is kept until then (§7); `retryAt`/`retryUntil`: a message kept after
// UNKNOWN_RECIPIENT, tried again then, for up to a day (§7). `status` of our own messages moves forward
// only: pending -> sent -> delivered -> seen (or failed); received messages are
// "received". Our own messages keep their exact frame until delivered: a resend (after no
// ack, or after a failover, §7) is that frame, byte for byte.

import { PeerKeys } from './crypto.js';
import { storedAt } from './failover.js';

export const Status = Object.freeze({
  PENDING: 'pending',
  SENT: 'sent',
  DELIVERED: 'delivered',
  SEEN: 'seen',
  FAILED: 'failed',
  RECEIVED: 'received',
});
const RANK = { pending: 0, sent: 1, delivered: 2, seen: 3 };

const keyOf = (sender, messageId) => `${sender}/${messageId}`;
// Receipts kept for our messages whose copy has not come yet (History.earlyReceipts).
const MAX_EARLY_RECEIPTS = 1000;
const byTime = (a, b) => a.sentAt - b.sentAt || (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0);

/** A storage backend that keeps everything in memory (Node, tests), copying as IndexedDB does. */
export class MemoryBackend {
  constructor() {
    this.tables = new Map();
  }

  #table(name) {
    if (!this.tables.has(name)) this.tables.set(name, new Map());
    return this.tables.get(name);
  }

  async get(table, key) {
    const value = this.#table(table).get(key);
    return value === undefined ? undefined : structuredClone(value);
  }

  async put(table, key, value) {
    this.#table(table).set(key, structuredClone(value));
  }

  async delete(table, key) {
    this.#table(table).delete(key);
  }

  async all(table) {
    return [...this.#table(table).values()].map((value) => structuredClone(value));
  }
}

export class History {
  constructor(backend, me) {
    this.backend = backend;
    this.me = me;
    this.messages = new Map();
    this.rejections = new Map();
    this.holds = new Map();
    this.pins = new Map();
    this.meta = new Map();
    // Receipts for our messages not here yet (one another of our devices sent, §8: its copy
    // and the peer's receipt travel apart, and the receipt may come first), by peer/id.
    this.earlyReceipts = new Map();
  }

  static async load(backend, me) {
    const history = new History(backend, me);
    for (const record of await backend.all('messages')) {
      history.messages.set(keyOf(record.sender, record.messageId), record);
    }
    for (const record of await backend.all('rejected')) {
      history.rejections.set(keyOf(record.sender, record.messageId), record);
    }
    for (const record of await backend.all('held')) {
      history.holds.set(keyOf(record.sender, record.messageId), record);
    }
    for (const record of await backend.all('peers')) {
      history.pins.set(record.userId, new PeerKeys(record.userId, record.signKey, record.boxKey));
    }
    for (const record of await backend.all('meta')) history.meta.set(record.name, record.value);
    return history;
  }

  async #save(record) {
    this.messages.set(keyOf(record.sender, record.messageId), record);
    await this.backend.put('messages', keyOf(record.sender, record.messageId), record);
  }

  // --- meta ---------------------------------------------------------------------

  getMeta(name) {
    return this.meta.get(name);
  }

  async setMeta(name, value) {
    this.meta.set(name, value);
    await this.backend.put('meta', name, { name, value });
  }

  // --- pinned keys ------------------------------------------------------------------

  pinned(userId) {
    return this.pins.get(userId) ?? null;
  }

  /** Pin a peer's keys (first use, or after the user re-verified them: `trust`). */
  async pin(keys) {
    this.pins.set(keys.userId, keys);
    await this.backend.put('peers', keys.userId, keys.toJSON());
  }

  // --- our messages -----------------------------------------------------------------

  async addOutgoing(peer, messageId, text, sentAt, frame) {
    const record = {
      sender: this.me, peer, messageId, outgoing: true, text, sentAt, serverTs: null,
      status: Status.PENDING, read: true, seenReported: true, frame, resend: false, error: null,
    };
    await this.#save(record);
    return { ...record };
  }

  /** Our message sent by another of our devices (its copy, §8): stored as sent. */
  async addOwnCopy(peer, messageId, text, sentAt, serverTs) {
    if (this.#kept(this.me, messageId)) return null;
    const early = this.earlyReceipts.get(keyOf(peer, messageId));
    this.earlyReceipts.delete(keyOf(peer, messageId));
    const record = {
      sender: this.me, peer, messageId, outgoing: true, text, sentAt, serverTs,
      status: early ?? Status.SENT, read: true, seenReported: true, frame: null, resend: false, error: null,
    };
    await this.#save(record);
    return { ...record };
  }

  /** The message sealed anew (STALE_DEVICES, §8): its frame from now on. */
  async replaceFrame(messageId, frame) {
    const record = this.own(messageId);
    if (record) await this.#save({ ...record, frame });
  }

  get(sender, messageId) {
    const record = this.messages.get(keyOf(sender, messageId));
    return record ? { ...record } : null;
  }

  own(messageId) {
    return this.messages.get(keyOf(this.me, messageId)) ?? null;
  }

  /** Whether the message must go (again) to the server: pending, or marked for a resend. */
  needsSending(messageId) {
    const record = this.own(messageId);
    return Boolean(record && (record.status === Status.PENDING || record.resend));
  }

  /** The oldest message to send, not waiting for a later try (`retryAt`), or null. */
  nextToSend(nowMs = Date.now()) {
    const waiting = [...this.messages.values()].filter(
      (record) => record.outgoing && (record.status === Status.PENDING || record.resend) && !(record.retryAt > nowMs),
    );
    return waiting.sort(byTime)[0] ?? null;
  }

  /** When the earliest message kept for a later try is due (ms), or null. */
  nextRetryAt() {
    let due = null;
    for (const record of this.messages.values()) {
      if (record.outgoing && Number.isInteger(record.retryAt) && (record.status === Status.PENDING || record.resend)) {
        due = due === null ? record.retryAt : Math.min(due, record.retryAt);
      }
    }
    return due;
  }

  /** Keep a refused message to try again later, for up to `retryForMs` after its first
   * such refusal (§7, UNKNOWN_RECIPIENT after a failover), backing off: each wait is the
   * time since that first refusal, between `baseMs` and `capMs`. False once that is over
   * (the refusal is then final). */
  async keepForRetry(messageId, { baseMs, capMs, retryForMs }, nowMs = Date.now()) {
    const record = this.own(messageId);
    if (!record) return false;
    const until = record.retryUntil ?? nowMs + retryForMs;
    if (nowMs >= until) return false;
    const delay = Math.min(capMs, Math.max(baseMs, nowMs - (until - retryForMs)));
    await this.#save({ ...record, retryAt: Math.min(nowMs + delay, until), retryUntil: until });
    return true;
  }

  /** Frames sent and not answered yet: messages marked to go again (§7), `seen` marks
   * without their `seenStored`, messages kept for a later try. */
  outstanding(nowMs = Date.now()) {
    let resends = 0;
    let seenMarks = 0;
    let kept = 0;
    for (const record of this.messages.values()) {
      if (record.outgoing && record.retryAt > nowMs && (record.status === Status.PENDING || record.resend)) kept += 1;
      else if (record.outgoing && record.resend) resends += 1;
      else if (!record.outgoing && record.read && record.seenReported && !record.seenStored) seenMarks += 1;
    }
    return { resends, seenMarks, kept };
  }

  /** The people we sent a message to, the most recent first (at most `limit`). */
  peersWrittenTo(limit) {
    const latest = new Map();
    for (const record of this.messages.values()) {
      if (record.outgoing) latest.set(record.peer, Math.max(latest.get(record.peer) ?? 0, record.sentAt));
    }
    return [...latest].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([peer]) => peer);
  }

  lastSentAt() {
    let last = 0;
    for (const record of this.messages.values()) if (record.outgoing) last = Math.max(last, record.sentAt);
    return last;
  }

  /** The server stored it (an `ack`), at `stored` (§7: the ack's epoch, the cell, the
   * directory version; a resend's ack replaces them): true if that moved it to `sent`. */
  async markSent(messageId, serverTs, stored = null) {
    const record = this.own(messageId);
    if (!record) return false;
    const moved = record.status === Status.PENDING;
    const where = record.frame ? { stored, retryAt: null, retryUntil: null } : {};
    if (!moved && !record.resend) {
      if (record.frame) await this.#save({ ...record, ...where });
      return false;
    }
    await this.#save({
      ...record,
      ...where,
      status: moved ? Status.SENT : record.status,
      serverTs: record.serverTs ?? serverTs,
      resend: false,
    });
    return moved;
  }

  /** Refused for good: a pending message fails; a refused resend stays as it was (sent)
   * and is not sent again. True if the message failed. */
  async markFailed(messageId, error) {
    const record = this.own(messageId);
    if (!record) return false;
    if (record.status !== Status.PENDING) {
      if (record.resend) await this.#save({ ...record, resend: false, retryAt: null, retryUntil: null });
      return false;
    }
    await this.#save({ ...record, status: Status.FAILED, error, resend: false, retryAt: null, retryUntil: null });
    return true;
  }

  /** A receipt from `by`: the ids of our messages to them that it moved forward. */
  async applyReceipt(by, messageIds, status) {
    const changed = [];
    for (const messageId of messageIds) {
      const record = this.own(messageId);
      if (!record && !this.#kept(this.me, messageId)) this.#keepEarly(by, messageId, status);
      if (!record || record.peer !== by || !(record.status in RANK)) continue;
      if (RANK[status] <= RANK[record.status]) continue;
      // Delivered: the recipient holds it, so the frame is no longer needed (§7).
      await this.#save({ ...record, status, frame: null, resend: false });
      changed.push(messageId);
    }
    return changed;
  }

  /** A receipt for one of ours whose copy has not come (addOwnCopy applies it); the
   * furthest status, for at most MAX_EARLY_RECEIPTS messages (in memory: the copy comes
   * within moments of the receipt that overtook it). */
  #keepEarly(by, messageId, status) {
    const key = keyOf(by, messageId);
    const held = this.earlyReceipts.get(key);
    if (held && RANK[held] >= RANK[status]) return;
    this.earlyReceipts.delete(key);
    this.earlyReceipts.set(key, status);
    if (this.earlyReceipts.size > MAX_EARLY_RECEIPTS) this.earlyReceipts.delete(this.earlyReceipts.keys().next().value);
  }

  /** §7: after a failover, every message without a `delivered` receipt goes again;
   * `which(peer, stored)`: only those it accepts, by recipient and where they were stored. */
  async markUndeliveredForResend(which = () => true) {
    const marked = [];
    for (const record of [...this.messages.values()].sort(byTime)) {
      if (record.outgoing && record.status === Status.SENT && record.frame && !record.resend && which(record.peer, record.stored ?? storedAt())) {
        await this.#save({ ...record, resend: true });
        marked.push(record.messageId);
      }
    }
    return marked;
  }

  // --- their messages ----------------------------------------------------------------

  /** Whether a message from `sender` is already stored (or held, or rejected): a duplicate. */
  hasMessage(sender, messageId) {
    const key = keyOf(sender, messageId);
    return this.messages.has(key) || this.rejections.has(key) || this.holds.has(key);
  }

  async addIncoming(sender, messageId, text, sentAt, serverTs) {
    // A held message is stored here before it stops being held: never neither.
    if (this.#kept(sender, messageId)) return null;
    const record = {
      sender, peer: sender, messageId, outgoing: false, text, sentAt, serverTs,
      status: Status.RECEIVED, read: false, seenReported: false, frame: null, resend: false, error: null,
    };
    await this.#save(record);
    return { ...record };
  }

  async addRejected(sender, messageId, sentAt, reason) {
    const key = keyOf(sender, messageId);
    if (this.#kept(sender, messageId)) return null;
    const record = { sender, messageId, sentAt, reason };
    this.rejections.set(key, record);
    await this.backend.put('rejected', key, record);
    return { ...record };
  }

  /** Keep a message we cannot open yet (its sender's keys changed) as it came: ciphertext,
   * until the user trusts the new keys. Null if it is a duplicate. */
  #kept(sender, messageId) {
    const key = keyOf(sender, messageId);
    return this.messages.has(key) || this.rejections.has(key);
  }

  /** `copy`: {fromDevice, key, keyNonce} of a copy sealed for this device (§8), if it is one. */
  async addHeld(sender, messageId, sentAt, serverTs, body, nonce, copy = null) {
    if (this.hasMessage(sender, messageId)) return null;
    const key = keyOf(sender, messageId);
    const record = { sender, messageId, sentAt, serverTs, body, nonce, ...(copy ?? {}) };
    await this.backend.put('held', key, record);
    this.holds.set(key, record);
    return { ...record };
  }

  /** The messages held from `sender` (every sender's without one), oldest first. */
  held(sender) {
    return [...this.holds.values()].filter((record) => !sender || record.sender === sender).sort(byTime);
  }

  /** A held message was opened (or found unreadable): it is no longer held. */
  async releaseHeld(sender, messageId) {
    const key = keyOf(sender, messageId);
    this.holds.delete(key);
    await this.backend.delete('held', key);
  }

  rejected(sender) {
    return [...this.rejections.values()].filter((record) => !sender || record.sender === sender).sort(byTime);
  }

  /** Mark every message from `peer` read: the ids newly read. */
  async markRead(peer) {
    const ids = [];
    for (const record of [...this.messages.values()]) {
      if (!record.outgoing && record.sender === peer && !record.read) {
        await this.#save({ ...record, read: true });
        ids.push(record.messageId);
      }
    }
    return ids;
  }

  /** Read messages whose sender was not told yet: {sender: [messageId, ...]}. */
  unreportedSeen() {
    const found = {};
    for (const record of [...this.messages.values()].sort(byTime)) {
      if (!record.outgoing && record.read && !record.seenReported) {
        (found[record.sender] ??= []).push(record.messageId);
      }
    }
    return found;
  }

  /** The `markSeen` went out; the mark is kept until its `seenStored`. */
  async markSeenReported(sender, messageIds) {
    for (const messageId of messageIds) {
      const record = this.messages.get(keyOf(sender, messageId));
      if (record) await this.#save({ ...record, seenReported: true, seenStored: null });
    }
  }

  /** `seenStored`: the `seen` receipt of these marks is queued for `sender`, at `stored`. */
  async markSeenStored(sender, messageIds, stored) {
    for (const messageId of messageIds) {
      const record = this.messages.get(keyOf(sender, messageId));
      if (record && !record.outgoing && record.seenReported) await this.#save({ ...record, seenStored: stored });
    }
  }

  /** A connection ended: marks that went out and were never answered go again. */
  async unansweredSeenAgain() {
    let count = 0;
    for (const record of [...this.messages.values()]) {
      if (!record.outgoing && record.read && record.seenReported && !record.seenStored) {
        await this.#save({ ...record, seenReported: false });
        count += 1;
      }
    }
    return count;
  }

  /** §7: the `seen` marks stored (answered) go again; `which(sender, stored)`: only those
   * it accepts, by sender and where they were stored. How many. */
  async markSeenForResend(which = () => true) {
    let count = 0;
    for (const record of [...this.messages.values()]) {
      if (!record.outgoing && record.read && record.seenReported && record.seenStored && which(record.sender, record.seenStored)) {
        await this.#save({ ...record, seenReported: false, seenStored: null });
        count += 1;
      }
    }
    return count;
  }

  // --- reading ------------------------------------------------------------------------

  /** The conversation with `peer`, ordered by sentAt then messageId (§3). */
  history(peer) {
    return [...this.messages.values()].filter((record) => record.peer === peer).sort(byTime).map((r) => ({ ...r }));
  }

  /** Every peer with messages or pinned keys, the latest activity first. */
  conversations() {
    const found = new Map([...this.pins.keys()].map((peer) => [peer, { peer, last: null, unread: 0 }]));
    for (const record of this.messages.values()) {
      const entry = found.get(record.peer) ?? { peer: record.peer, last: null, unread: 0 };
      if (!entry.last || byTime(entry.last, record) < 0) entry.last = { ...record };
      if (!record.outgoing && !record.read) entry.unread += 1;
      found.set(record.peer, entry);
    }
    return [...found.values()].sort((a, b) => (b.last?.sentAt ?? 0) - (a.last?.sentAt ?? 0) || (a.peer < b.peer ? -1 : 1));
  }
}
