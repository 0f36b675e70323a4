// Acknowledging delivered items: after they are stored, a few at once (acks.py).
//
// Items that arrive together (a sync page) are acked in one frame of up to 100 ids, a
// moment later. If the connection is gone by then, the ids are dropped: the items are
// still queued on the server, come again with the next sync, are recognised as
// duplicates, and acked then.
//
// An `ack` refused for load (RATE_LIMITED: storage throttled, or our pace; INTERNAL)
// names only the action, not its ids: the acks sent in the last minute go again, on the
// same connection, no sooner than the refusal's `retryAfter` (§3) and with the resend
// backoff, one wait at a time, for up to MAX_ACK_RETRIES refusals in a row (then the next
// sync brings the items again). Acking an id twice is harmless (the server deletes what is
// still queued and ignores the rest).

import { NotConnected } from './errors.js';
import {
  MAX_ACK_RETRIES,
  MAX_RECENT_ACK_FRAMES,
  RECENT_ACKS_SECONDS,
  RESEND_BASE_SECONDS,
  RESEND_CAP_SECONDS,
  RETRYABLE_CODES,
} from './client-rules.generated.js';
import { MAX_IDS_PER_FRAME } from './limits.generated.js';
import { backoffDelay, resendWait, sleep } from './util.js';

const RECENT_ACKS_MS = RECENT_ACKS_SECONDS * 1000;

export class AckBatcher {
  constructor(connection, delay, { resendBase = RESEND_BASE_SECONDS * 1000, resendCap = RESEND_CAP_SECONDS * 1000 } = {}) {
    this.connection = connection;
    this.delay = delay;
    this.ids = [];
    this.timer = null;
    this.recent = []; // { at, ids } of the ack frames sent lately, oldest first
    this.resendBase = resendBase;
    this.resendCap = resendCap;
    this.refusals = 0; // within a minute of each other, for the backoff
    this.refusedAt = -Infinity;
    this.retrying = false;
  }

  /** Ack an item that is safely stored (or that we chose to drop). */
  add(itemId) {
    this.ids.push(itemId);
    if (this.ids.length >= MAX_IDS_PER_FRAME) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.delay);
  }

  /** Send every ack not sent yet, now. */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    while (this.ids.length) {
      const chunk = this.ids.splice(0, MAX_IDS_PER_FRAME);
      try {
        this.connection.send({ action: 'ack', ids: chunk });
      } catch (error) {
        if (!(error instanceof NotConnected)) throw error;
        this.ids = []; // they come again with the next sync
        return;
      }
      this.recent.push({ at: Date.now(), ids: chunk });
      if (this.recent.length > MAX_RECENT_ACK_FRAMES) this.recent.shift();
    }
  }

  /** An `error` whose ref is `ack`; true if it was for load, and the acks sent lately go
   * again once its wait is over (one wait at a time, however many were refused). */
  refused(code, retryAfter) {
    if (!RETRYABLE_CODES.has(code)) return false;
    const now = Date.now();
    if (now - this.refusedAt > RECENT_ACKS_MS) this.refusals = 0;
    this.refusedAt = now;
    if (this.retrying || this.refusals >= MAX_ACK_RETRIES) return true;
    const session = this.connection.session;
    if (!session) return true; // the next connection's sync brings the items again
    this.refusals += 1;
    const wait = resendWait(backoffDelay(this.refusals - 1, this.resendBase, this.resendCap), retryAfter);
    this.retrying = true;
    sleep(wait, session.ended).then(() => {
      this.retrying = false;
      if (session.isEnded || session !== this.connection.session) return;
      const since = Date.now() - RECENT_ACKS_MS - wait;
      const again = this.recent.filter((sent) => sent.at >= since).flatMap((sent) => sent.ids);
      this.recent = [];
      for (const id of new Set(again)) if (!this.ids.includes(id)) this.ids.push(id);
      this.flush();
    });
    return true;
  }
}
