// Acknowledging delivered items: after they are stored, a few at once (acks.py).
//
// Items that arrive together (a sync page) are acked in one frame of up to 100 ids, a
// moment later. If the connection is gone by then, the ids are dropped: the items are
// still queued on the server, come again with the next sync, are recognised as
// duplicates, and acked then.

import { NotConnected } from './errors.js';
import { MAX_IDS_PER_FRAME } from './limits.generated.js';

export class AckBatcher {
  constructor(connection, delay) {
    this.connection = connection;
    this.delay = delay;
    this.ids = [];
    this.timer = null;
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
    }
  }
}
