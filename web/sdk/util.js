// Small promise helpers the SDK's modules share.

import {
  BACKOFF_MAX_DOUBLINGS,
  PING_INTERVAL_SECONDS,
  PING_JITTER_SECONDS,
} from './client-rules.generated.js';

/** A promise with its resolve function, and whether it settled. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  const handle = {
    promise,
    settled: false,
    value: undefined,
    resolve(value) {
      if (handle.settled) return;
      handle.settled = true;
      handle.value = value;
      resolve(value);
    },
    reject(error) {
      if (handle.settled) return;
      handle.settled = true;
      reject(error);
    },
  };
  promise.catch(() => {});
  return handle;
}

/** Resolves after `ms` milliseconds (or at once when `cancel` resolves first). */
export function sleep(ms, cancel) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    cancel?.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Until the first of the promises settles or `ms` passed; never rejects. */
export async function firstOf(promises, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([...promises.map((promise) => promise.catch(() => {})), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `promise`, or a TimeoutError after `ms`. */
export async function withTimeout(promise, ms, what = 'the answer') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not come within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class TimeoutError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/**
 * Milliseconds to wait before retry number `attempt` (0-based): "equal jitter", as
 * messenger_protocol/client_rules.py's `backoff_delay` computes it (a test holds the two to
 * the same numbers). Half of the capped exponential step is fixed, the other half random,
 * so clients that lost the server together do not all come back at the same instant.
 */
export function backoffDelay(attempt, base, cap, random = Math.random) {
  const step = Math.min(cap, base * 2 ** Math.min(attempt, BACKOFF_MAX_DOUBLINGS));
  return step / 2 + random() * (step / 2);
}

/**
 * Milliseconds to wait before sending a refused frame again: the backoff, and never sooner
 * than the refusal's `retryAfter` (ms; RATE_LIMITED and QUEUE_FULL), as client_rules.py's
 * `resend_wait` computes it.
 */
export function resendWait(backoff, retryAfter) {
  return Math.max(backoff, Number.isInteger(retryAfter) ? retryAfter : 0);
}

/** Milliseconds of quiet (nothing sent) before the next ping: `interval` jittered by the
 * same share of it as PING_JITTER_SECONDS is of PING_INTERVAL_SECONDS (540 ± 30 s by
 * default), as client_rules.ping_delay draws it. `random` returns [0, 1). */
export function pingDelay(interval, random = Math.random) {
  const spread = (interval * PING_JITTER_SECONDS) / PING_INTERVAL_SECONDS;
  return interval - spread + random() * 2 * spread;
}

export function chunks(items, size) {
  const out = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}

/** A minimal event emitter: `on(type, listener)` returns the function that unsubscribes. */
export class Emitter {
  #listeners = new Map();

  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  emit(type, event) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        console.error(`a ${type} listener failed`, error);
      }
    }
  }

  /** The next `type` event for which `where` holds; TimeoutError after `ms`. */
  next(type, where = () => true, ms = 10_000) {
    let off;
    const found = new Promise((resolve) => {
      off = this.on(type, (event) => {
        if (where(event)) {
          off();
          resolve(event);
        }
      });
    });
    return withTimeout(found, ms, `a ${type} event`).finally(() => off());
  }
}
