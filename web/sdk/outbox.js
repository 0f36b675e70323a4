// Our messages on their way to the server: one at a time, the same frame until acked, as
// client/messenger_client/outbox.py does.
//
// One loop sends the oldest message to send, waits for its `ack`, and only then goes on
// to the next, so the server queues our messages in the order we wrote them. Without an
// answer the same frame goes again, backing off; on a new connection it goes again at
// once (once the connection is set up: `session.ready`). A resend is harmless: the server
// answers it with the same ack and never delivers it twice while it holds it. Which
// refusals are worth another try, and the backoff, are the client rules'
// (messenger_protocol/client_rules.py, generated into client-rules.generated.js).
//
// A message keeps its frame until its `delivered` receipt, and where its last `ack` says it
// was stored (the ack's epoch, the cell, the directory version): after a failover
// (docs/protocol.md §7, the rules in failover.js) the server may have lost it, so
// `resendUndelivered` puts the sent-but-undelivered messages the rule names back in the
// outbox, and they go again, byte for byte. A message refused UNKNOWN_RECIPIENT soon after
// its recipient's cell changed epoch is kept and tried again later, backing off, for up to
// a day (§7); the others go on meanwhile.

import {
  RETRYABLE_CODES,
  UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS,
  UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS,
} from './client-rules.generated.js';
import { NotConnected, SendRefused, UnknownUser } from './errors.js';
import { Status } from './history.js';
import { backoffDelay, deferred, firstOf, resendWait, sleep, withTimeout } from './util.js';

export class Outbox {
  /** `keepUnknownRecipient(peer)`: whether a refusal UNKNOWN_RECIPIENT may be a
   * registration a failover lost (§7), so that the message is kept and tried again. */
  /** `reseal(messageId, peer)`: the message sealed anew for the devices the server holds
   * now (STALE_DEVICES, §8), its new frame kept in the history. */
  constructor(history, connection, { resendBase, resendCap, publish, log, keepUnknownRecipient = async () => false, reseal = null }) {
    this.history = history;
    this.connection = connection;
    this.resendBase = resendBase;
    this.resendCap = resendCap;
    this.publish = publish;
    this.log = log ?? console;
    this.wakeSignal = deferred();
    this.head = null;
    this.waiters = new Map();
    this.stopped = deferred();
    this.keepUnknownRecipient = keepUnknownRecipient;
    this.reseal = reseal;
    // Every message this outbox was asked to send again (§7), answered or not.
    this.resent = new Set();
  }

  /** Something was added, or a connection opened: look at the outbox again. */
  wake() {
    this.wakeSignal.resolve();
  }

  stop() {
    this.stopped.resolve();
    this.wake();
  }

  /** After a failover: every message without a `delivered` receipt goes again (with `to`:
   * only those to the peers it accepts, whose cell failed over); their ids. */
  async resendUndelivered(which) {
    const marked = await this.history.markUndeliveredForResend(which);
    for (const messageId of marked) this.resent.add(messageId);
    if (marked.length) this.wake();
    return marked;
  }

  /** Send messages one at a time, oldest first, each until acked or refused. */
  async run() {
    while (!this.stopped.settled) {
      const entry = this.history.nextToSend();
      if (!entry) {
        this.wakeSignal = deferred();
        const due = this.history.nextRetryAt();
        if (due === null) await this.wakeSignal.promise;
        else await firstOf([this.wakeSignal.promise], Math.max(0, due - Date.now()));
        continue;
      }
      try {
        await this.#deliver(entry.messageId, entry.peer, entry.frame);
      } catch (error) {
        if (this.stopped.settled) return;
        this.log.error('the outbox failed on one message; retrying', error);
        await sleep(this.resendBase, this.stopped.promise);
      }
    }
  }

  /** Until the server stored our message; SendRefused / UnknownUser if it refused it. */
  waitSent(messageId, timeout) {
    const waiter = deferred();
    if (!this.waiters.has(messageId)) this.waiters.set(messageId, new Set());
    this.waiters.get(messageId).add(waiter);
    this.#settleWaiters(messageId);
    return withTimeout(waiter.promise, timeout, `the ack of ${messageId}`).finally(() => {
      this.waiters.get(messageId)?.delete(waiter);
      if (!this.waiters.get(messageId)?.size) this.waiters.delete(messageId);
    });
  }

  // --- what the server says ------------------------------------------------------------

  /** An `ack`: the server stored the message (maybe a resend's second ack), at `stored`. */
  async acked(messageId, serverTs, stored = null) {
    if (await this.history.markSent(messageId, serverTs, stored)) {
      const record = this.history.own(messageId);
      this.publish('status', { peer: record.peer, messageIds: [messageId], status: Status.SENT });
    }
    this.#settleHead(messageId, { acked: true });
    this.#settleWaiters(messageId);
  }

  /** An `error` frame; true if it refused the message being sent (its ref). */
  refused(ref, code, message, retryAfter = null) {
    if (!this.head || ref !== this.head.messageId) return false;
    this.#settleHead(ref, { refused: true, code, message, retryAfter });
    return true;
  }

  /** A receipt moved these messages past `sent`: no need to wait for their ack. */
  movedOn(messageIds) {
    for (const messageId of messageIds) {
      this.#settleHead(messageId, null);
      this.#settleWaiters(messageId);
    }
  }

  // --- sending -------------------------------------------------------------------------

  async #deliver(messageId, peer, firstFrame) {
    let frame = firstFrame;
    let attempt = 0;
    while (this.history.needsSending(messageId) && !this.stopped.settled) {
      const session = await this.connection.waitSession();
      if (!session) return;
      // A new connection first tells who may see us (the client's onOpen), then we send.
      await firstOf([session.ready, session.ended, this.stopped.promise], this.resendCap);
      if (session.isEnded) continue;
      const outcome = deferred();
      this.head = { messageId, outcome };
      try {
        this.connection.send(frame); // the very same frame, every time
      } catch (error) {
        this.head = null;
        if (!(error instanceof NotConnected)) throw error;
        await firstOf([session.ended, this.stopped.promise], this.resendBase);
        continue;
      }
      const delay = backoffDelay(attempt, this.resendBase, this.resendCap);
      await firstOf([outcome.promise, session.ended, this.stopped.promise], delay);
      this.head = null;
      if (!outcome.settled) {
        if (!session.isEnded) attempt += 1; // no answer in time: the same frame again
        continue; // or a new connection: resend on it at once
      }
      const result = outcome.value;
      if (result?.refused) {
        if (RETRYABLE_CODES.has(result.code)) {
          attempt += 1;
          await sleep(resendWait(delay, result.retryAfter), this.stopped.promise);
          continue;
        }
        if (result.code === 'STALE_DEVICES' && this.reseal) {
          // A device list changed meanwhile: sealed for the lists the server holds now.
          attempt += 1;
          frame = await this.reseal(messageId, peer);
          continue;
        }
        if (result.code === 'UNKNOWN_RECIPIENT' && (await this.#kept(messageId, peer))) return;
        await this.#fail(messageId, peer, result);
      }
      return;
    }
  }

  /** §7: refused UNKNOWN_RECIPIENT soon after the recipient's cell changed epoch: kept for
   * a later try (the others go on meanwhile), for up to a day. */
  async #kept(messageId, peer) {
    if (!(await this.keepUnknownRecipient(peer))) return false;
    const kept = await this.history.keepForRetry(messageId, {
      baseMs: this.resendBase,
      capMs: UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS * 1000,
      retryForMs: UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS * 1000,
    });
    if (kept) this.log.info?.(`message ${messageId} refused UNKNOWN_RECIPIENT after a failover: kept`);
    return kept;
  }

  async #fail(messageId, peer, refusal) {
    if (await this.history.markFailed(messageId, `${refusal.code}: ${refusal.message}`)) {
      this.publish('sendFailed', { peer, messageId, code: refusal.code, reason: refusal.message });
    }
    this.#settleWaiters(messageId);
  }

  #settleHead(messageId, outcome) {
    if (this.head?.messageId === messageId) this.head.outcome.resolve(outcome);
  }

  #settleWaiters(messageId) {
    const waiters = this.waiters.get(messageId);
    if (!waiters?.size) return;
    const record = this.history.get(this.history.me, messageId);
    if (!record || record.status === Status.PENDING) return;
    for (const waiter of waiters) {
      if (record.status === Status.FAILED) {
        const [code, ...rest] = (record.error ?? '').split(': ');
        waiter.reject(code === 'UNKNOWN_RECIPIENT' ? new UnknownUser(record.peer, code) : new SendRefused(code, rest.join(': ')));
      } else {
        waiter.resolve(record);
      }
    }
  }
}
