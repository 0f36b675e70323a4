// Delivered items, stored one at a time in the order they came, then acknowledged, as
// client/messenger_client/inbox.py does.
//
// The server sends us `message` and `receipt` items (live, or on `sync`) and keeps each one
// until we ack its `id`. They are taken in order, one at a time (the reader never waits):
//
// - a message is deduplicated by (from, messageId), opened with the sender's pinned keys
//   (which verifies the sender), stored, and only then acked;
// - a message that does not open because its sender's keys changed is held: kept as it
//   came (ciphertext) in the history, then acked; once the user trusts the new keys it is
//   opened and shown in its place (never acked and dropped, §7: we are its only copy);
// - a message that does not open otherwise is recorded as rejected (no text) and acked as
//   well: keeping it queued would not make it readable, and would replay it on every sync;
// - a receipt moves our messages on (delivered, seen), then is acked;
// - a malformed message item is acked and dropped, for the same reason;
// - `syncDone` ends a page of a sync: the acks go at once, then the next page is asked for
//   with the page's cursor while the server says `more`, and the last page ends the sync
//   (a 'synced' event). A page refused for load (RATE_LIMITED: the server's storage
//   overloaded, or our range being moved; INTERNAL) is asked for again on the same
//   connection, no sooner than the refusal's `retryAfter` (docs/protocol.md §3) and with
//   the resend backoff; left alone, the sync would never end until the next connection.
//   Every sync asks for `batch`. The cell's `epoch` is remembered (in
//   the history): after a failover the server may have lost its last writes, so every
//   message of ours without a `delivered` receipt goes again (docs/protocol.md §7).
//
// Whatever is not acked (the connection dropped, an unexpected failure) comes again with the
// next sync. The `seen` marks of what the user read go out from here too, and each is kept
// until its `seenStored`, with where it was stored (§7): a mark not answered when its
// connection ends goes again on the next one, and one refused for load (RATE_LIMITED,
// INTERNAL: the refusal names the action, not the marks) goes again on the same connection
// with every unanswered mark, no sooner than the refusal's `retryAfter`; a new epoch sends
// every mark again.

import { decodePlaintext, openSealed } from './crypto.js';
import { isMessageId, isUserId } from './encoding.js';
import { KeyChanged, NotConnected, UnknownUser, UnreadableMessage } from './errors.js';
import { AckBatcher } from './acks.js';
import { Status } from './history.js';
import { RESEND_BASE_SECONDS, RESEND_CAP_SECONDS, RETRYABLE_CODES } from './client-rules.generated.js';
import { MAX_IDS_PER_FRAME } from './limits.generated.js';
import { backoffDelay, chunks, resendWait, sleep } from './util.js';

// The history's meta key for the last syncDone `epoch` we saw.
export const EPOCH_KEY = 'epoch';
const RECEIPT_STATUSES = new Set([Status.DELIVERED, Status.SEEN]);

export class Inbox {
  /**
   * @param {History} history
   * @param {Identity} identity our keys, to open messages
   * @param {object} parts
   * @param {KeyPinning} parts.pinning the senders' keys
   * @param {Devices} parts.devices opens a copy sealed for this device (§8)
   * @param {Connection} parts.connection
   * @param {Outbox} parts.outbox told of receipts, and to resend after a new epoch
   * @param {PresenceTracker} parts.presence told of messages (a hidden peer is asked again)
   * @param {number} parts.ackDelay ms acks of items that arrive together wait for each other
   * @param {(type: string, event: object) => void} parts.publish the client's events
   */
  constructor(history, identity, { pinning, devices, connection, outbox, presence, ackDelay, publish, log, onEpoch = async () => {}, resendBase = RESEND_BASE_SECONDS * 1000, resendCap = RESEND_CAP_SECONDS * 1000 }) {
    this.history = history;
    this.devices = devices; // opens copies sealed per device (§8)
    this.identity = identity;
    this.pinning = pinning;
    this.connection = connection;
    this.outbox = outbox;
    this.presence = presence;
    this.publish = publish;
    this.onEpoch = onEpoch; // every syncDone's epoch of our home cell, as it comes
    this.log = log ?? console;
    this.acks = new AckBatcher(connection, ackDelay, { resendBase, resendCap });
    this.items = Promise.resolve();
    this.synced = false; // the sync of the current connection is done
    this.syncCount = 0; // items of the sync so far, over its pages
    this.page = null; // the sync page in flight: { frame, session, refusals }
    this.resendBase = resendBase; // the backoff of a page asked for again (ms)
    this.resendCap = resendCap;
    this.seenRefusals = 0; // markSeen refused since the last seenStored, for the backoff
    this.seenRetry = null; // the session whose unanswered marks go again after a wait
  }

  /** Queue an item frame (message, receipt, items, syncDone) that came on `session`; they
   * are stored in order, one at a time. */
  put(frame, session) {
    this.items = this.items.then(() => this.#process(frame, session)).catch((error) => this.#quietly(error));
  }

  /** A new connection: it syncs again, from the start, before we say "synced". */
  newConnection() {
    this.synced = false;
    this.syncCount = 0;
  }

  /** The connection is not online: not synced until the next one's sync is done. */
  connectionLost() {
    this.synced = false;
    this.items = this.items.then(() => this.history.unansweredSeenAgain()).catch((error) => this.#quietly(error));
  }

  /** `seenStored`: the `seen` receipt of these marks is queued for `sender` (§7). */
  async seenStored(sender, messageIds, stored) {
    this.seenRefusals = 0;
    await this.history.markSeenStored(sender, messageIds, stored);
  }

  /** An `error` whose ref is `ack`; true if it was for load: the acks sent lately go
   * again on this connection once its wait is over (acks.js). */
  ackRefused(code, retryAfter) {
    return this.acks.refused(code, retryAfter);
  }

  /** An `error` whose ref is `markSeen`; true if it was for load and the unanswered marks
   * go again once its wait is over (one wait at a time, however many marks were refused
   * meanwhile: they all go then). */
  seenRefused(code, retryAfter) {
    if (!RETRYABLE_CODES.has(code)) return false;
    if (this.seenRetry) return true;
    const session = this.connection.session;
    if (!session) return true; // the next connection sends the unanswered marks
    this.seenRefusals += 1;
    const wait = resendWait(backoffDelay(this.seenRefusals - 1, this.resendBase, this.resendCap), retryAfter);
    this.seenRetry = session;
    sleep(wait, session.ended).then(() => {
      this.seenRetry = null;
      if (session.isEnded || session !== this.connection.session) return; // the next one sends them
      this.items = this.items
        .then(async () => {
          await this.history.unansweredSeenAgain();
          await this.reportSeen();
        })
        .catch((error) => {
          if (!(error instanceof NotConnected)) this.#quietly(error);
        });
    });
    return true;
  }

  /** §7: the `seen` marks stored (those `which` accepts) go again, now or on the next
   * connection; how many. */
  async resendSeen(which) {
    const marked = await this.history.markSeenForResend(which);
    if (marked) this.log.info?.(`sending ${marked} seen marks again after a failover`);
    return marked;
  }

  /** Ask for everything queued for us, page by page (a 'synced' event once all is stored). */
  requestSync() {
    this.#askPage({ action: 'sync', batch: true });
  }

  /** An `error` whose ref is `sync`: the page in flight was refused; true if that was it.
   * A refusal for load asks for the same page again later (above); any other leaves it to
   * the next connection. */
  syncRefused(code, retryAfter) {
    const page = this.page;
    if (!page) return false;
    if (RETRYABLE_CODES.has(code)) {
      page.refusals += 1;
      const wait = resendWait(backoffDelay(page.refusals - 1, this.resendBase, this.resendCap), retryAfter);
      sleep(wait, page.session.ended).then(() => {
        if (this.page !== page || page.session.isEnded || page.session !== this.connection.session) return;
        try {
          this.connection.send(page.frame);
        } catch (error) {
          if (!(error instanceof NotConnected)) this.#quietly(error); // else the next connection syncs
        }
      });
    }
    return true;
  }

  #askPage(frame) {
    this.connection.send(frame);
    this.page = { frame, session: this.connection.session, refusals: 0 };
  }

  /** Send the `seen` marks not sent yet (NotConnected when offline: they wait). */
  async reportSeen() {
    // Acks first: what was seen was delivered, and its receipt should say so first.
    this.acks.flush();
    for (const [sender, ids] of Object.entries(this.history.unreportedSeen())) {
      for (const chunk of chunks(ids, MAX_IDS_PER_FRAME)) {
        this.connection.send({ action: 'markSeen', to: sender, messageIds: chunk });
        await this.history.markSeenReported(sender, chunk);
      }
    }
  }

  /** Send the seen marks and acks not sent yet, if still connected. */
  async close() {
    try {
      await this.reportSeen();
    } catch (error) {
      if (!(error instanceof NotConnected)) throw error;
    }
    try {
      this.acks.flush();
    } catch (error) {
      if (!(error instanceof NotConnected)) throw error;
    }
  }

  async #process(frame, session) {
    try {
      if (frame.type === 'message') await this.#receiveMessage(frame);
      else if (frame.type === 'receipt') await this.#receiveReceipt(frame);
      else if (frame.type === 'items') {
        for (const item of Array.isArray(frame.items) ? frame.items : []) {
          if (item?.type === 'message') await this.#receiveMessage(item);
          else if (item?.type === 'receipt') await this.#receiveReceipt(item);
        }
      } else if (frame.type === 'syncDone') await this.#endOfPage(frame, session);
    } catch (error) {
      // Never stop on one bad item; unacked, it comes again with the next sync.
      if (!(error instanceof NotConnected)) this.log.error(`could not process a ${frame.type} frame`, error);
    }
  }

  // --- sync, page by page ---------------------------------------------------------------

  /** The end of a sync page: ask for the next one, or say we are caught up (§2, §7). */
  async #endOfPage(frame, session) {
    // What the page brought is stored: ack it before asking for more.
    this.acks.flush();
    this.syncCount += Number.isInteger(frame.count) ? frame.count : 0;
    if (typeof frame.epoch === 'string') await this.#rememberEpoch(frame.epoch);
    // A page of a session that was replaced meanwhile: the new session runs its own round.
    if (session !== this.connection.session) return;
    this.page = null;
    if (frame.more === true && typeof frame.cursor === 'string') {
      this.#askPage({ action: 'sync', after: frame.cursor, batch: true });
      return;
    }
    this.synced = true;
    this.publish('synced', { count: this.syncCount });
  }

  async #rememberEpoch(epoch) {
    await this.onEpoch(epoch);
    const last = this.history.getMeta(EPOCH_KEY);
    if (last !== undefined && last !== epoch) {
      // Rule 1 (§7): a new epoch: every undelivered message and every seen mark goes again.
      await this.outbox.resendUndelivered();
      await this.resendSeen();
      try {
        await this.reportSeen();
      } catch (error) {
        if (!(error instanceof NotConnected)) throw error; // else on the next connection
      }
    }
    if (last !== epoch) await this.history.setMeta(EPOCH_KEY, epoch);
  }

  // --- one message or receipt -------------------------------------------------------------

  async #receiveMessage(frame) {
    const { id: itemId, from: sender, messageId, sentAt, body, nonce } = frame;
    if (typeof itemId !== 'string') return;
    const wellFormed =
      isUserId(sender) && isMessageId(messageId) && typeof body === 'string' &&
      typeof nonce === 'string' && Number.isInteger(sentAt);
    if (!wellFormed) {
      this.log.warn('acked and dropped a malformed message item');
      this.acks.add(itemId);
      return;
    }
    if (this.history.hasMessage(sender, messageId)) {
      this.acks.add(itemId); // a duplicate: already stored (or rejected) once
      return;
    }
    // A copy of our own message sent by another of our devices (§8) names its peer in `to`.
    const ownCopy = sender === this.identity.userId;
    if (ownCopy && !isUserId(frame.to)) {
      this.acks.add(itemId);
      return;
    }
    let text;
    try {
      text = await this.#open(frame);
    } catch (error) {
      if (error instanceof UnreadableMessage || error instanceof KeyChanged || error instanceof UnknownUser) {
        await this.#refuse(frame, error);
        return;
      }
      throw error;
    }
    const serverTs = Number.isInteger(frame.serverTs) ? frame.serverTs : null;
    if (ownCopy) {
      const copy = await this.history.addOwnCopy(frame.to, messageId, text, sentAt, serverTs);
      this.acks.add(itemId);
      if (copy) this.publish('message', { message: copy });
      return;
    }
    const stored = await this.history.addIncoming(sender, messageId, text, sentAt, serverTs);
    this.acks.add(itemId);
    if (stored) {
      this.publish('message', { message: stored });
      try {
        this.presence.messageFrom(sender);
      } catch (error) {
        this.#quietly(error); // the next connection subscribes anew
      }
    }
  }

  /** The text of a message: a copy sealed for this device (§8), or a Box from the sender. */
  async #open(frame) {
    if (typeof frame.key === 'string') return decodePlaintext(await this.devices.open(frame));
    const keys = await this.pinning.forReading(frame.from);
    return decodePlaintext(await openSealed(this.identity, keys, frame.body, frame.nonce));
  }

  /** Open, in order, what was held from `peer` now that their keys are trusted: each is
   * stored (a 'message' event) before it stops being held. */
  releaseHeld(peer) {
    const done = this.items.then(() => this.#release(peer));
    this.items = done.catch((error) => this.#quietly(error));
    return done;
  }

  async #release(peer) {
    for (const held of this.history.held(peer)) {
      let text = null;
      try {
        text = await this.#open({ ...held, from: peer });
      } catch (error) {
        if (!(error instanceof UnreadableMessage)) throw error;
      }
      if (text === null) {
        const rejection = await this.history.addRejected(peer, held.messageId, held.sentAt, 'could not be read with the trusted keys');
        await this.history.releaseHeld(peer, held.messageId);
        if (rejection) this.publish('rejected', { ...rejection, keyChanged: false });
        continue;
      }
      const stored = await this.history.addIncoming(peer, held.messageId, text, held.sentAt, held.serverTs);
      await this.history.releaseHeld(peer, held.messageId);
      if (stored) this.publish('message', { message: stored });
    }
    this.publish('held', { peer, count: 0 });
  }

  async #refuse(frame, problem) {
    const { id: itemId, from: sender, messageId, sentAt, body, nonce } = frame;
    let reason = problem;
    if (problem instanceof UnreadableMessage) {
      // Tell a changed key (the user must act) from plain garbage.
      try {
        await this.pinning.check(sender);
      } catch (error) {
        if (error instanceof KeyChanged) reason = error;
      }
    }
    if (reason instanceof KeyChanged) {
      // Kept before the ack: it opens once the user trusts the new keys.
      const serverTs = Number.isInteger(frame.serverTs) ? frame.serverTs : null;
      const { fromDevice, key, keyNonce } = frame;
      const copy = typeof key === 'string' ? { fromDevice, key, keyNonce } : null;
      const held = await this.history.addHeld(sender, messageId, sentAt, serverTs, body, nonce, copy);
      if (held) this.publish('held', { peer: sender, count: this.history.held(sender).length });
    } else {
      const rejection = await this.history.addRejected(sender, messageId, sentAt, reason.message);
      if (rejection) this.publish('rejected', { ...rejection, keyChanged: false });
    }
    this.acks.add(itemId);
  }

  async #receiveReceipt(frame) {
    const { id: itemId, by, messageIds, status } = frame;
    if (typeof itemId !== 'string') return;
    if (RECEIPT_STATUSES.has(status) && typeof by === 'string' && Array.isArray(messageIds)) {
      const ids = messageIds.filter((id) => typeof id === 'string');
      const changed = await this.history.applyReceipt(by, ids, status);
      if (changed.length) {
        this.publish('status', { peer: by, messageIds: changed, status });
        this.outbox.movedOn(changed);
      }
    }
    this.acks.add(itemId);
  }

  #quietly(error) {
    if (!(error instanceof NotConnected)) this.log.error(error);
  }
}
