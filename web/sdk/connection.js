// The WebSocket's life: connect, keep alive, reconnect, hand every frame to the client, as
// client/messenger_client/connection.py does.
//
// API Gateway closes a connection after 10 idle minutes and after 2 hours whatever
// happens, and networks drop. So a Connection is a loop that never gives up until stopped:
// it opens a socket with a freshly signed URL, pings when it has been quiet, replaces the
// socket before the 2-hour limit (make before break: the new socket opens before the old
// one closes, so watchers see no offline blip), and after any loss reconnects with a
// jittered exponential backoff. Each open socket is a session; the client runs `onOpen`
// (sync, presence subscriptions, outbox) for every new one. A connection the server closed
// after `REPLACED` (docs/protocol.md §3 Closing: a fifth connection of this device took its
// place) is not opened again until `start` is called again: reconnecting would replace
// another connection of the device, a loop. Nor is one closed after `DEVICE_REMOVED` (§8:
// device 1 removed this device; its handshakes are refused from then on): it stops at once
// and says why. One closed after `TOO_MANY_REFUSED` (§3)
// reconnects on its own, but only after a pause as long as the server's window of refused
// frames: back at once, it would be closed again.

import { HandshakeRefused, InvalidFrame, NotConnected } from './errors.js';
import { utf8Length } from './encoding.js';
import {
  FINAL_CLOSE_ERRORS,
  FINAL_CLOSE_REASONS,
  MOVE_ON_ERRORS,
  PAUSED_CLOSE_ERRORS,
  FINAL_HANDSHAKE_STATUSES,
  KEEP_ALIVE_TICK_SECONDS,
  MAX_CONNECTION_AGE_SECONDS,
  OPEN_TIMEOUT_SECONDS,
  PING_INTERVAL_SECONDS,
  PONG_TIMEOUT_SECONDS,
  RECONNECT_BACKOFF_BASE_SECONDS,
  RECONNECT_BACKOFF_CAP_SECONDS,
  REFUSED_CLOSE_PAUSE_SECONDS,
} from './client-rules.generated.js';
import { MAX_FRAME_BYTES } from './limits.generated.js';
import { PROTOCOL_SCHEMAS } from './schema.js';
import { backoffDelay, deferred, pingDelay, sleep } from './util.js';

const OPEN = 1;

/** Timings of the connection's life (milliseconds), the client rules' (messenger_protocol/
 * client_rules.py says why each is what it is). Tests shorten them. */
export const DEFAULT_POLICY = Object.freeze({
  openTimeout: OPEN_TIMEOUT_SECONDS * 1000,
  // Ping when nothing was sent for about this long (jittered, `pingDelay`): just under the
  // 10-minute idle limit, since API Gateway answers a ping itself.
  pingInterval: PING_INTERVAL_SECONDS * 1000,
  // A ping unanswered for this long means the network is gone without a close.
  pongTimeout: PONG_TIMEOUT_SECONDS * 1000,
  // API Gateway ends every connection after 2 hours; move to a new one 10 minutes before.
  maxAge: MAX_CONNECTION_AGE_SECONDS * 1000,
  backoffBase: RECONNECT_BACKOFF_BASE_SECONDS * 1000,
  backoffCap: RECONNECT_BACKOFF_CAP_SECONDS * 1000,
  // Closed for too many refused frames (§3): this long, then the backoff, before a retry.
  refusedClosePause: REFUSED_CLOSE_PAUSE_SECONDS * 1000,
  tick: KEEP_ALIVE_TICK_SECONDS * 1000,
});

export const ConnectionState = Object.freeze({
  CONNECTING: 'connecting',
  ONLINE: 'online',
  OFFLINE: 'offline', // lost or refused: reconnecting after `retryIn` ms
  // Closed by the server after REPLACED (§3 Closing): another connection of this device
  // took its place. Not reopened until `start` again; the outbox keeps what it holds.
  REPLACED: 'replaced',
  // Closed by the server after DEVICE_REMOVED (§8): this device is no longer in its user's
  // device list, and every handshake would be refused until it is linked again.
  REMOVED: 'removed',
  CLOSED: 'closed', // stopped by us
});

// The state a connection the server closed for good (FINAL_CLOSE_ERRORS) stays in.
const CLOSED_FOR_GOOD = Object.freeze({
  REPLACED: ConnectionState.REPLACED,
  DEVICE_REMOVED: ConnectionState.REMOVED,
});

/** The browser's WebSocket, where there is one. */
export function browserSocket(url) {
  return new globalThis.WebSocket(url);
}

/** Whether an error code announces a close after which we do not reconnect at once (§3
 * Closing): for good (REPLACED, DEVICE_REMOVED) or after a pause (TOO_MANY_REFUSED). */
function announcesClose(code) {
  return FINAL_CLOSE_ERRORS.has(code) || PAUSED_CLOSE_ERRORS.has(code);
}

class Session {
  constructor(socket, number, now, pingAfter) {
    this.socket = socket;
    this.number = number;
    this.openedAt = now;
    this.lastSent = now;
    // Quiet (nothing sent) for this long: time to ping. Drawn again after every ping.
    this.pingAfter = pingAfter;
    this.pingSentAt = null;
    // The error code announcing that the server closes this session for good
    // (FINAL_CLOSE_ERRORS) or for a pause (PAUSED_CLOSE_ERRORS), once the server said so.
    this.closeError = null;
    // Resolved once the client has set the session up (`onOpen` done): the outbox waits.
    this.readySignal = deferred();
    this.ready = this.readySignal.promise;
    this.endedSignal = deferred();
    this.ended = this.endedSignal.promise;
  }

  get isEnded() {
    return this.endedSignal.settled;
  }

  end() {
    this.endedSignal.resolve();
  }
}

export class Connection {
  /**
   * @param {object} options
   * @param {(refresh: boolean) => Promise<string>} options.signedUrl a freshly signed URL;
   *   `refresh` after a refused handshake (a directory is fetched again, §6)
   * @param {(url: string) => WebSocket} [options.createSocket] browser-like WebSocket
   * @param {(frame: object, session: Session) => void} options.onFrame
   * @param {(session: Session) => Promise<void>} options.onOpen
   * @param {(status: object) => void} options.onStatus
   */
  constructor({ signedUrl, createSocket = browserSocket, onFrame, onOpen, onStatus, policy, schemas, log }) {
    this.signedUrl = signedUrl;
    this.createSocket = createSocket;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onStatus = onStatus;
    this.policy = { ...DEFAULT_POLICY, ...policy };
    this.schemas = schemas ?? PROTOCOL_SCHEMAS;
    this.log = log ?? console;
    this.status = { state: ConnectionState.CLOSED, retryIn: null, error: null };
    this.session = null;
    this.sessionsOpened = 0;
    this.lastError = null;
    this.attempts = 0;
    this.changed = deferred();
    this.stopping = null;
    // Resolved by `start` to reopen a connection that the server closed for good.
    this.resume = deferred();
    this.runner = null;
    this.ticker = null;
    this.nextSwitchAt = 0;
    this.replacing = false;
  }

  /** Start connecting in the background (and stay connected until `stop`); again after
   * the server closed the connection for good (REPLACED): connect again. */
  start() {
    this.resume.resolve();
    if (this.runner) return;
    this.stopping = deferred();
    this.runner = this.#run();
    this.ticker = setInterval(() => this.#keepAlive(), this.policy.tick);
  }

  /** Close the socket and stop reconnecting. */
  async stop() {
    if (!this.runner) return;
    this.stopping.resolve();
    clearInterval(this.ticker);
    this.session?.socket.close(1000, 'bye');
    await this.runner;
    this.runner = null;
    this.#setStatus({ state: ConnectionState.CLOSED, retryIn: null, error: null });
  }

  /** The open session; HandshakeRefused at once when the server said no (where it can tell),
   * NotConnected if none opened within `timeout` ms. */
  async waitOpen(timeout) {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (this.session) return this.session;
      if (this.lastError instanceof HandshakeRefused && this.lastError.status) throw this.lastError;
      if (Object.values(CLOSED_FOR_GOOD).includes(this.status.state) && !this.resume.settled) throw new NotConnected(`not connected: ${this.status.error}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        const reason = this.lastError ? `: ${this.lastError.message}` : '';
        throw new NotConnected(`cannot connect${reason}`);
      }
      await sleep(left, this.changed.promise);
    }
  }

  /** The open session, waiting as long as it takes (or until stopped: then null). */
  async waitSession() {
    while (!this.session) {
      if (!this.runner) return null;
      await Promise.race([this.changed.promise, this.stopping.promise]);
    }
    return this.session;
  }

  /**
   * Send one frame (an object, or JSON text kept byte for byte) on the open session. Every
   * frame is checked against the protocol's schemas first: a frame that breaks them is a
   * bug, thrown as InvalidFrame, never sent.
   */
  send(frame) {
    const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
    const document = typeof frame === 'string' ? JSON.parse(frame) : frame;
    const problems = this.schemas.problemsOfFrame(document);
    if (problems.length) throw new InvalidFrame(String(document.action), problems);
    const size = utf8Length(text);
    if (size > MAX_FRAME_BYTES) throw new InvalidFrame(String(document.action), [`${size} bytes is over ${MAX_FRAME_BYTES}`]);
    const session = this.session;
    if (!session || session.socket.readyState !== OPEN) throw new NotConnected('not connected');
    session.socket.send(text);
    session.lastSent = Date.now();
    return session;
  }

  /** Close the socket at once, as a network failure would; the loop reconnects. */
  drop() {
    this.session?.socket.close(4000, 'dropped');
  }

  async #run() {
    while (!this.stopping.settled) {
      let pause = 0;
      this.#setStatus({ state: ConnectionState.CONNECTING, retryIn: null, error: null });
      let socket = null;
      try {
        socket = await this.#openSocket(this.lastError !== null);
      } catch (error) {
        this.lastError = error;
      }
      if (socket) {
        this.lastError = null;
        this.attempts = 0;
        this.#install(socket);
        const closeError = await this.#serve();
        if (this.stopping.settled) break;
        if (FINAL_CLOSE_ERRORS.has(closeError)) {
          await this.#waitForRestart(closeError);
          continue;
        }
        if (closeError) {
          // Back at once, it would be refused and closed again: pause first.
          this.lastError = new NotConnected(`closed by the server: ${closeError}`);
          pause = this.policy.refusedClosePause;
        }
      }
      const delay = pause + backoffDelay(this.attempts, this.policy.backoffBase, this.policy.backoffCap);
      this.attempts += 1;
      const error = this.lastError ? this.lastError.message : 'connection lost';
      this.#setStatus({ state: ConnectionState.OFFLINE, retryIn: delay, error });
      await sleep(delay, this.stopping.promise);
    }
  }

  /** The server closed us for good (§3 Closing): stay down until `start` or `stop`. */
  async #waitForRestart(finalClose) {
    this.resume = deferred();
    const error = `${finalClose}: ${FINAL_CLOSE_REASONS[finalClose]}`;
    this.log.warn?.(`closed by the server (${error}); not reconnecting until started again`);
    this.#setStatus({ state: CLOSED_FOR_GOOD[finalClose], retryIn: null, error });
    await Promise.race([this.resume.promise, this.stopping.promise]);
    this.attempts = 0;
  }

  async #openSocket(refresh) {
    const url = await this.signedUrl(refresh);
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = this.createSocket(url);
      } catch {
        // Said without the URL: it carries this connect's signature.
        reject(new NotConnected('not a ws:// or wss:// URL'));
        return;
      }
      const timer = setTimeout(() => {
        socket.onclose = null;
        socket.close();
        reject(new NotConnected(`no connection within ${this.policy.openTimeout} ms`));
      }, this.policy.openTimeout);
      socket.onerror = () => {};
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(socket);
      };
      socket.onclose = () => {
        clearTimeout(timer);
        // Node's `ws` knows the handshake's HTTP status (node.js sets it); browsers never do.
        const status = socket.handshakeStatus ?? null;
        if (status === null || FINAL_HANDSHAKE_STATUSES.has(status)) reject(new HandshakeRefused(status));
        else reject(new NotConnected(`the server answered HTTP ${status}`));
      };
    });
  }

  #install(socket) {
    const now = Date.now();
    this.sessionsOpened += 1;
    const session = new Session(socket, this.sessionsOpened, now, pingDelay(this.policy.pingInterval));
    socket.onmessage = (event) => this.#read(session, event.data);
    socket.onclose = (event) => {
      // The close reason says it too where the server could choose it (`messenger local`).
      if (announcesClose(event?.reason)) session.closeError ??= event.reason;
      session.end();
      if (this.session === session) this.#changed();
    };
    const previous = this.session;
    this.session = session;
    previous?.end();
    this.nextSwitchAt = now + this.policy.maxAge;
    this.#setStatus({ state: ConnectionState.ONLINE, retryIn: null, error: null });
    this.#changed();
    Promise.resolve()
      .then(() => this.onOpen(session))
      .catch((error) => {
        if (!(error instanceof NotConnected)) this.log.error('setting up the new connection failed', error);
      })
      .finally(() => session.readySignal.resolve());
  }

  #read(session, data) {
    session.pingSentAt = null; // anything at all proves the link is alive
    if (typeof data !== 'string') {
      this.log.warn('ignored a binary frame');
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.log.warn('ignored a frame that is not JSON');
      return;
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      this.log.warn('ignored a frame that is not a JSON object');
      return;
    }
    if (frame.type === 'error' && announcesClose(frame.code)) session.closeError ??= frame.code;
    this.onFrame(frame, session);
    if (frame.type === 'error' && MOVE_ON_ERRORS.has(frame.code)) {
      // This side no longer serves us (a fenced stage answers even a ping so, and cannot
      // close): we close, and reconnect through the directory (§7), the handshake there
      // refused if it moved.
      this.log.info?.('told MOVED: closing to reconnect where the directory says');
      session.socket.close(1000, 'moved');
    }
  }

  /** Until the session, and those replacing it, end; or we stop. The error code of a close
   * the server announced (`announcesClose`), if so. */
  async #serve() {
    let closeError = null;
    for (;;) {
      const current = this.session;
      if (!current) return null;
      await Promise.race([current.ended, this.stopping.promise]);
      if (this.stopping.settled) break;
      if (this.session === current) {
        closeError = current.closeError;
        break;
      }
    }
    this.session?.end();
    this.session = null;
    this.#changed();
    return closeError;
  }

  #keepAlive() {
    const session = this.session;
    if (!session) return;
    const now = Date.now();
    if (session.pingSentAt !== null) {
      if (now - session.pingSentAt > this.policy.pongTimeout) {
        this.log.info?.('no answer to ping: dropping the connection');
        session.socket.close(4001, 'no pong');
        session.end();
      }
      return;
    }
    if (now - session.lastSent >= session.pingAfter) {
      try {
        this.send({ action: 'ping' });
        session.pingSentAt = now;
        session.pingAfter = pingDelay(this.policy.pingInterval);
      } catch {
        // lost meanwhile: the loop reconnects
      }
    }
    if (now >= this.nextSwitchAt && !this.replacing) this.#replace(session);
  }

  /** Open a new connection before the old one reaches API Gateway's 2-hour limit. */
  async #replace(old) {
    this.replacing = true;
    try {
      const socket = await this.#openSocket(false);
      if (this.stopping.settled || this.session !== old) {
        socket.close(1000, 'not needed');
        return;
      }
      this.#install(socket);
      // The old socket may still carry frames meant for us: its handler keeps reading them
      // until the close handshake is done.
      old.socket.close(1000, 'replaced');
    } catch (error) {
      // Keep the old one while it lasts; try again a little later.
      this.nextSwitchAt = Date.now() + this.policy.backoffCap;
      this.log.info?.(`could not open a replacement connection yet: ${error.message}`);
    } finally {
      this.replacing = false;
    }
  }

  #changed() {
    const previous = this.changed;
    this.changed = deferred();
    previous.resolve();
  }

  #setStatus(status) {
    const same =
      status.state === this.status.state &&
      status.retryIn === this.status.retryIn &&
      status.error === this.status.error;
    if (same) return;
    this.status = status;
    this.#changed();
    this.onStatus(status);
  }
}
