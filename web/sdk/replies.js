// Requests that expect an answer frame (getKeys, getPresence, setPresenceVisibility),
// matched to their answers, as replies.py does. Answers carry no request id: a `keys`
// frame names its user, a `presence` answer lists the users asked about, and an `error`
// names the action in its `ref`. So one request per action is in flight at a time, and
// an error with that ref can only be its answer.

import { NotConnected, RequestFailed } from './errors.js';
import { deferred, firstOf } from './util.js';

export class Replies {
  constructor(connection, timeout) {
    this.connection = connection;
    this.timeout = timeout;
    this.waiters = new Set();
    this.queues = new Map();
  }

  /** Send `frame` and return the first frame that `matches`; RequestFailed if refused,
   * NotConnected if no connection, it closes first, or no answer comes in time. */
  request(frame, matches) {
    const action = frame.action;
    const previous = this.queues.get(action) ?? Promise.resolve();
    const turn = previous.catch(() => {}).then(() => this.#ask(frame, matches));
    this.queues.set(action, turn);
    return turn;
  }

  async #ask(frame, matches) {
    await this.connection.waitOpen(this.timeout);
    const waiter = { matches, action: frame.action, answer: deferred() };
    this.waiters.add(waiter);
    try {
      const session = this.connection.send(frame);
      await firstOf([waiter.answer.promise, session.ended], this.timeout);
      if (waiter.answer.settled) return await waiter.answer.promise;
      if (session.isEnded) throw new NotConnected('the connection closed before the answer came');
      throw new NotConnected(`no answer to ${frame.action} within ${this.timeout} ms`);
    } finally {
      this.waiters.delete(waiter);
    }
  }

  /** Hand a frame to the request it answers; false if none was waiting for it. */
  answer(frame) {
    for (const waiter of this.waiters) {
      if (!waiter.answer.settled && waiter.matches(frame)) {
        waiter.answer.resolve(frame);
        return true;
      }
    }
    return false;
  }

  /** An `error` frame whose ref names a pending request's action; false otherwise. */
  refuse(ref, code, message) {
    for (const waiter of this.waiters) {
      if (waiter.action === ref && !waiter.answer.settled) {
        waiter.answer.reject(new RequestFailed(code, message));
        return true;
      }
    }
    return false;
  }

  failAll(error) {
    for (const waiter of this.waiters) waiter.answer.reject(error);
  }
}
