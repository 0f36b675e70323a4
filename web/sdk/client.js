// MessengerClient: the SDK an app uses, speaking docs/protocol.md v1.1 as the Python SDK
// (client/messenger_client/client.py) does. The client is the source of truth.
//
//   const client = await MessengerClient.open({ url, identity, backend });
//   client.on('message', ({ message }) => ...);        // and 'status', 'presence', ...
//   const message = await client.send('bob', 'hello'); // pending, in the outbox
//   await client.waitSent(message.messageId);          // the server stored it
//
// - Sending: each text is encrypted once (NaCl Box, fresh nonce, ULID messageId, strictly
//   increasing sentAt) and its frame kept; the outbox sends one message at a time, in
//   order, and resends the same frame with backoff until `ack`, across reconnects. A
//   message keeps its frame until `delivered`, and goes again after a failover (§7).
//   Beyond §7: with a directory, the client reads it again on every connection and every
//   `directoryInterval` while connected; when a newer version moves a peer's cell, what
//   was not delivered to that cell's users goes again the same way (a message acked by a
//   peer's lost primary and never replicated is otherwise lost: nothing else tells us).
// - Receiving: every `message` is deduplicated by (from, messageId), decrypted with the
//   sender's pinned key (which verifies the sender), stored, and only then acked (in
//   batches). One that does not open is recorded as rejected and acked as well.
// - Keys: pinned on first use (getKeys); different keys later are refused (KeyChanged)
//   until the user compares the safety number and calls `trust`.
// - Connection: `sync` (paged, batched) after every (re)connect, presence subscriptions
//   renewed, pings, reconnects, make-before-break, the directory and home cells (§6).
// - Presence: ours is visible to our contacts only (the people we wrote to), told to the
//   server before our first message to someone new and, on every connection, before the
//   outbox goes; a subscribed peer who looks unknown (we were not their contact) and then
//   writes to us is asked again, once per connection.

import {
  decodePlaintext,
  encodePlaintext,
  normalizeFingerprint,
  openSealed,
  PeerKeys,
  sendMessageFrame,
  signedConnectQuery,
  withQuery,
} from './crypto.js';
import { isMessageId, isUserId, ulid, USER_ID_RULE } from './encoding.js';
import {
  FingerprintMismatch,
  KeyChanged,
  NotConnected,
  RequestFailed,
  UnknownUser,
  UnreadableMessage,
} from './errors.js';
import { AckBatcher } from './acks.js';
import { browserSocket, Connection, ConnectionState } from './connection.js';
import { Directory, homeCellOf } from './directory.js';
import { History, Status } from './history.js';
import { MAX_CONTACTS, MAX_IDS_PER_FRAME, MAX_SUBSCRIPTIONS } from './limits.js';
import { Outbox } from './outbox.js';
import { Replies } from './replies.js';
import { PROTOCOL_SCHEMAS } from './schema.js';
import { chunks, Emitter } from './util.js';

const RECEIPT_STATUSES = new Set([Status.DELIVERED, Status.SEEN]);

/** Timings (milliseconds). The defaults suit a real network; tests shorten them. */
export const DEFAULT_SETTINGS = Object.freeze({
  requestTimeout: 10_000,
  // A message not acked within this long is resent (the same frame), then backing off.
  resendBase: 3000,
  resendCap: 60_000,
  // Acks of items that arrive together (a sync page) go out in one frame.
  ackDelay: 50,
  // Who may see our presence (§2 setPresenceVisibility): 'contacts' (the people we chat
  // with), 'everyone' or 'nobody'; null leaves the server's setting alone.
  presenceVisibility: 'contacts',
  // With a directory: how often it is read again while connected (and on every new
  // connection), to see a peer's cell fail over. It is served with max-age=5: cheap.
  directoryInterval: 60_000,
});

export class MessengerClient extends Emitter {
  /**
   * @param {object} options
   * @param {Identity} options.identity our keys
   * @param {History} options.history the local history (History.load(backend, userId))
   * @param {string} [options.url] a cell's WebSocket URL, or
   * @param {string} [options.directoryUrl] the directory's URL (§6)
   * @param {(url: string) => WebSocket} [options.createSocket] default: the browser's
   * @param {typeof fetch} [options.fetch] for the directory
   * @param {(frame: object) => void} [options.checkReceived] tests: called on every frame
   */
  constructor({ identity, history, url, directoryUrl, createSocket = browserSocket, fetch, settings, policy, schemas, checkReceived, log }) {
    super();
    if (!url === !directoryUrl) throw new TypeError('give a url or a directoryUrl');
    this.identity = identity;
    this.history = history;
    this.url = url ?? null;
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    const onCellsMoved = (document, cells) => this.#cellsMoved(document, cells);
    this.directory = directoryUrl ? new Directory(directoryUrl, fetch, { onCellsMoved }) : null;
    this.directoryTimer = null;
    this.schemas = schemas ?? PROTOCOL_SCHEMAS;
    this.checkReceived = checkReceived ?? null;
    this.log = log ?? console;
    this.connection = new Connection({
      signedUrl: (refresh) => this.#signedUrl(refresh),
      createSocket,
      onFrame: (frame, session) => this.#onFrame(frame, session),
      onOpen: (session) => this.#onOpen(session),
      onStatus: (status) => this.#onStatus(status),
      policy,
      schemas: this.schemas,
      log: this.log,
    });
    const publish = (type, event) => this.emit(type, event);
    this.outbox = new Outbox(history, this.connection, { ...this.settings, publish, log: this.log });
    this.replies = new Replies(this.connection, this.settings.requestTimeout);
    this.acks = new AckBatcher(this.connection, this.settings.ackDelay);
    this.items = Promise.resolve();
    this.synced = false;
    this.syncCount = 0;
    this.verified = new Set(); // peers whose keys we checked on this connection
    this.subscriptions = new Set();
    this.askedAgain = new Set(); // hidden peers asked again on this connection
    this.presenceOf = new Map();
    this.contactsSent = null;
    this.lastSentAt = history.lastSentAt();
    this.outboxRun = null;
    this.closed = false;
  }

  /** A client on its history (loaded from `backend`), started. */
  static async open({ identity, backend, ...options }) {
    const history = await History.load(backend, identity.userId);
    const client = new MessengerClient({ identity, history, ...options });
    client.start();
    return client;
  }

  get userId() {
    return this.identity.userId;
  }

  get status() {
    return this.connection.status;
  }

  /** Start connecting (in the background) and the outbox. */
  start() {
    if (this.outboxRun) return;
    this.outboxRun = this.outbox.run();
    if (this.directory) {
      this.directoryTimer = setInterval(() => {
        if (this.connection.session) this.#lookAtDirectory();
      }, this.settings.directoryInterval);
    }
    this.connection.start();
  }

  /** Send the acks and seen marks not sent yet, then disconnect. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.directoryTimer);
    try {
      await this.#reportSeen();
    } catch (error) {
      if (!(error instanceof NotConnected)) throw error;
    }
    try {
      this.acks.flush();
    } catch (error) {
      if (!(error instanceof NotConnected)) throw error;
    }
    this.outbox.stop();
    await this.connection.stop();
    await this.outboxRun;
    this.replies.failAll(new NotConnected('the client closed'));
  }

  /** Until a connection is open: NotConnected after `timeout` ms. */
  async waitOnline(timeout = 10_000) {
    await this.connection.waitOpen(timeout);
  }

  /** Until the sync of the current connection is done: every queued item stored. */
  async waitSynced(timeout = 10_000) {
    await this.waitOnline(timeout);
    if (!this.synced) await this.next('synced', () => true, timeout);
  }

  /** Close the socket as a network failure would (the client reconnects by itself). */
  dropConnection() {
    this.connection.drop();
  }

  // --- sending -----------------------------------------------------------------------

  /**
   * Encrypt `text` for `peer` and put it in the outbox: the message, still pending. Throws
   * MessageTooLong (nothing sent), UnknownUser, KeyChanged, or NotConnected when the peer's
   * keys are unknown and no connection opens to fetch them.
   */
  async send(peer, text) {
    encodePlaintext(text); // too long: refused before anything else happens
    checkUserId(peer);
    const keys = await this.#keysForSending(peer);
    const contacts = this.contacts();
    if (!contacts.includes(peer) && this.connection.session) {
      // The peer may see us from now on: the server hears it before the message, so that
      // they see us when it reaches them (offline, the next connection tells it first).
      await this.#sendVisibility([peer, ...contacts].slice(0, MAX_CONTACTS)).catch((error) => this.#quietly(error));
    }
    const messageId = ulid();
    const sentAt = this.#nextSentAt();
    const frame = sendMessageFrame(this.identity, keys, messageId, text, sentAt);
    const message = await this.history.addOutgoing(peer, messageId, text, sentAt, frame);
    this.emit('message', { message });
    this.outbox.wake();
    return message;
  }

  /** Until the server stored our message; SendRefused / UnknownUser if it refused it. */
  waitSent(messageId, timeout = 30_000) {
    return this.outbox.waitSent(messageId, timeout);
  }

  #nextSentAt() {
    // Strictly increasing, so our own messages keep their order even within one millisecond.
    this.lastSentAt = Math.max(Date.now(), this.lastSentAt + 1);
    return this.lastSentAt;
  }

  // --- keys --------------------------------------------------------------------------

  /** The peer's keys from the server, pinned on first use; KeyChanged if they differ. */
  async peerKeys(peer) {
    checkUserId(peer);
    const offered = await this.#serverKeys(peer);
    const pinned = this.history.pinned(peer);
    if (!pinned) {
      await this.history.pin(offered);
    } else if (!pinned.equals(offered)) {
      const changed = new KeyChanged(peer, pinned.fingerprint(), offered.fingerprint());
      this.emit('keyChanged', { peer, pinned: changed.pinnedFingerprint, offered: changed.offeredFingerprint });
      throw changed;
    }
    this.verified.add(peer);
    return this.history.pinned(peer);
  }

  async #serverKeys(peer) {
    let answer;
    try {
      answer = await this.replies.request(
        { action: 'getKeys', userId: peer },
        (frame) => frame.type === 'keys' && frame.userId === peer,
      );
    } catch (error) {
      if (error instanceof RequestFailed && error.code === 'UNKNOWN_USER') throw new UnknownUser(peer);
      throw error;
    }
    try {
      return new PeerKeys(peer, answer.signKey, answer.boxKey);
    } catch {
      throw new RequestFailed('BAD_KEYS', `the server sent malformed keys for ${peer}`);
    }
  }

  async #keysForSending(peer) {
    const pinned = this.history.pinned(peer);
    if (pinned && (this.verified.has(peer) || !this.connection.session)) {
      // Offline, the pinned key is safe to encrypt to: only its holder can read.
      return pinned;
    }
    if (!pinned) await this.waitOnline(this.settings.requestTimeout);
    try {
      return await this.peerKeys(peer);
    } catch (error) {
      if (error instanceof NotConnected && pinned) return pinned;
      throw error;
    }
  }

  /** Pin the peer's current keys after the user compared their safety number. */
  async trust(peer, safetyNumber) {
    checkUserId(peer);
    const offered = await this.#serverKeys(peer);
    if (normalizeFingerprint(safetyNumber) !== offered.fingerprint()) {
      throw new FingerprintMismatch(peer, offered.fingerprint());
    }
    await this.history.pin(offered);
    this.verified.add(peer);
    this.emit('keyTrusted', { peer, fingerprint: offered.fingerprint() });
    return offered;
  }

  /** Our own safety number, or the one of a peer's pinned keys (null: not pinned). */
  fingerprint(peer) {
    if (peer === undefined) return this.identity.fingerprint();
    return this.history.pinned(peer)?.fingerprint() ?? null;
  }

  // --- presence ----------------------------------------------------------------------

  /** Who is online now; with `subscribe`, changes arrive as 'presence' events, and the
   * subscription is renewed on every reconnect. */
  async getPresence(userIds, { subscribe = false } = {}) {
    const wanted = [...new Set(userIds)];
    wanted.forEach(checkUserId);
    if (subscribe) {
      for (const userId of wanted) {
        if (this.subscriptions.size < MAX_SUBSCRIPTIONS) this.subscriptions.add(userId);
      }
    }
    for (const chunk of chunks(wanted, MAX_IDS_PER_FRAME)) {
      const asked = new Set(chunk);
      await this.replies.request(
        { action: 'getPresence', userIds: chunk, subscribe },
        (frame) =>
          frame.type === 'presence' &&
          Array.isArray(frame.users) &&
          frame.users.length === asked.size &&
          frame.users.every((user) => asked.has(user?.userId)),
      );
    }
    return wanted.map((userId) => this.presenceOf.get(userId)).filter(Boolean);
  }

  /** The last known presence of a user (kept up to date for subscriptions). */
  presence(userId) {
    return this.presenceOf.get(userId) ?? null;
  }

  /** The people we wrote to (at most 1,000, the most recent), sorted: those who may see
   * our presence. Someone who only wrote to us is not one. */
  contacts() {
    return this.history.peersWrittenTo(MAX_CONTACTS).sort();
  }

  /** Whether the server's protocol has this action (a newer SDK on an older server). */
  supports(action) {
    return this.schemas.has(`client.${action}`);
  }

  /** Tell the server who may see our presence, unless this connection did already. */
  async #sendVisibility(wanted = this.contacts()) {
    const visibility = this.settings.presenceVisibility;
    if (!visibility || !this.supports('setPresenceVisibility')) return;
    const contacts = visibility === 'contacts' ? [...wanted].sort() : [];
    const key = `${visibility}:${contacts.join(',')}`;
    if (key === this.contactsSent) return;
    const frame = { action: 'setPresenceVisibility', visibility };
    if (visibility === 'contacts') frame.contacts = contacts;
    await this.replies.request(frame, (answer) => answer.type === 'presenceVisibility');
    this.contactsSent = key;
  }

  // --- reading -----------------------------------------------------------------------

  /** Mark the conversation read: the peer gets a `seen` receipt (now, or once online). */
  async markSeen(peer) {
    const ids = await this.history.markRead(peer);
    try {
      await this.#reportSeen();
    } catch (error) {
      if (!(error instanceof NotConnected)) throw error;
    }
    return ids;
  }

  /** The conversation with `peer`, ordered by sentAt then messageId. */
  messages(peer) {
    return this.history.history(peer);
  }

  conversations() {
    return this.history.conversations();
  }

  /** Messages that arrived but could not be read or verified. */
  rejected(sender) {
    return this.history.rejected(sender);
  }

  async #reportSeen() {
    // Acks first: what was seen was delivered, and its receipt should say so first.
    this.acks.flush();
    for (const [sender, ids] of Object.entries(this.history.unreportedSeen())) {
      for (const chunk of chunks(ids, MAX_IDS_PER_FRAME)) {
        this.connection.send({ action: 'markSeen', to: sender, messageIds: chunk });
        await this.history.markSeenReported(sender, chunk);
      }
    }
  }

  // --- the connection ----------------------------------------------------------------

  async #signedUrl(refresh) {
    let url = this.url;
    if (this.directory) {
      const home = await this.directory.home(this.userId, { refresh });
      const previous = this.history.getMeta('homeUrl');
      if (previous && previous !== home.url) {
        // §7: our home moved (a failover): what has no `delivered` receipt goes again.
        await this.#resendUndelivered();
      }
      if (previous !== home.url) await this.history.setMeta('homeUrl', home.url);
      url = home.url;
    }
    return withQuery(url, signedConnectQuery(this.identity, Date.now()));
  }

  /** Every new connection: sync, renew subscriptions, seen marks, and who may see us; the
   * outbox goes once the server has our visibility (`session.ready`), so that no message
   * of ours reaches a peer who could not see us yet. */
  async #onOpen(session) {
    this.synced = false;
    this.syncCount = 0;
    this.verified.clear();
    this.contactsSent = null;
    this.askedAgain.clear();
    // Best effort (the next connection tries again), and never in the way of the sync.
    const visibility = this.#sendVisibility().catch((error) => this.#quietly(error));
    if (this.directory) this.#lookAtDirectory();
    try {
      this.connection.send({ action: 'sync', batch: true });
      for (const chunk of chunks([...this.subscriptions], MAX_IDS_PER_FRAME)) {
        // The answers refresh the presence cache through #onPresence.
        this.connection.send({ action: 'getPresence', userIds: chunk, subscribe: true });
      }
      await this.#reportSeen();
    } finally {
      await visibility;
    }
    this.outbox.wake();
  }

  #onStatus(status) {
    if (status.state !== ConnectionState.ONLINE) this.synced = false;
    this.emit('connection', status);
  }

  #onFrame(frame, session) {
    this.checkReceived?.(frame);
    switch (frame.type) {
      case 'message':
      case 'receipt':
      case 'items':
      case 'syncDone':
        // Items are stored in order, one at a time; the reader never waits on them.
        this.items = this.items
          .then(() => this.#processItem(frame, session))
          .catch((error) => this.#quietly(error));
        break;
      case 'ack':
        if (typeof frame.messageId === 'string') {
          this.outbox.acked(frame.messageId, Number.isInteger(frame.serverTs) ? frame.serverTs : null)
            .catch((error) => this.#quietly(error));
        }
        break;
      case 'error':
        this.#onError(frame);
        break;
      case undefined:
        // API Gateway's own frames ("Internal server error", ...) carry no type or ref:
        // whatever they answered is retried when its own timer runs out.
        this.log.warn(`the gateway answered an error: ${String(frame.message).slice(0, 200)}`);
        break;
      default:
        if (frame.type === 'presence') this.#onPresence(frame);
        this.replies.answer(frame);
    }
  }

  #onError(frame) {
    const code = String(frame.code);
    const message = String(frame.message ?? '');
    const handled = this.outbox.refused(frame.ref, code, message) || this.replies.refuse(frame.ref, code, message);
    if (!handled) this.emit('serverError', { code, message, ref: typeof frame.ref === 'string' ? frame.ref : null });
  }

  #onPresence(frame) {
    if (!Array.isArray(frame.users)) return;
    for (const user of frame.users) {
      if (!user || typeof user.userId !== 'string') continue;
      const presence = {
        userId: user.userId,
        online: user.online === true,
        lastSeen: Number.isInteger(user.lastSeen) ? user.lastSeen : null,
      };
      this.presenceOf.set(presence.userId, presence);
      this.emit('presence', presence);
    }
  }

  async #processItem(frame, session) {
    try {
      if (frame.type === 'message') await this.#receiveMessage(frame);
      else if (frame.type === 'receipt') await this.#receiveReceipt(frame);
      else if (frame.type === 'items') {
        for (const item of Array.isArray(frame.items) ? frame.items : []) {
          if (item?.type === 'message') await this.#receiveMessage(item);
          else if (item?.type === 'receipt') await this.#receiveReceipt(item);
        }
      } else if (frame.type === 'syncDone') await this.#syncPageDone(frame, session);
    } catch (error) {
      // Never stop on one bad item; unacked, it comes again with the next sync.
      if (!(error instanceof NotConnected)) this.log.error(`could not process a ${frame.type} frame`, error);
    }
  }

  /** The end of a sync page: ask for the next one, or say we are caught up (§2, §7). */
  async #syncPageDone(frame, session) {
    this.acks.flush();
    this.syncCount += Number.isInteger(frame.count) ? frame.count : 0;
    if (typeof frame.epoch === 'string') {
      const last = this.history.getMeta('epoch');
      if (last !== undefined && last !== frame.epoch) await this.#resendUndelivered();
      if (last !== frame.epoch) await this.history.setMeta('epoch', frame.epoch);
    }
    // A page of a session that was replaced meanwhile: the new session runs its own round.
    if (session !== this.connection.session) return;
    if (frame.more === true && typeof frame.cursor === 'string') {
      this.connection.send({ action: 'sync', after: frame.cursor, batch: true });
      return;
    }
    this.synced = true;
    this.emit('synced', { count: this.syncCount });
  }

  /** §7 (and beyond it, `to`: the users of a peer's cell that moved): what has no
   * `delivered` receipt goes again, the same frame. */
  async #resendUndelivered(to) {
    const marked = await this.history.markUndeliveredForResend(to);
    if (marked.length) this.outbox.wake();
  }

  /** Beyond §7: the directory moved these cells (a failover): what we sent to their users
   * and was not delivered may be lost with a primary, and goes again. */
  async #cellsMoved(document, cells) {
    await this.#resendUndelivered((peer) => cells.has(homeCellOf(document, peer)));
  }

  /** A look at the directory, in the background (a failed read waits for the next). */
  #lookAtDirectory() {
    this.directory.lookAgain().catch((error) => this.#quietly(error));
  }

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
    let text;
    try {
      const keys = this.history.pinned(sender) ?? (await this.peerKeys(sender));
      text = decodePlaintext(openSealed(this.identity, keys, body, nonce));
    } catch (error) {
      if (error instanceof UnreadableMessage || error instanceof KeyChanged || error instanceof UnknownUser) {
        await this.#reject(itemId, sender, messageId, sentAt, error);
        return;
      }
      throw error;
    }
    const serverTs = Number.isInteger(frame.serverTs) ? frame.serverTs : null;
    const stored = await this.history.addIncoming(sender, messageId, text, sentAt, serverTs);
    this.acks.add(itemId);
    if (stored) {
      this.emit('message', { message: stored });
      this.#askAgainIfHidden(sender);
    }
  }

  /** A message from a peer we subscribed to but cannot see: they may just have made us a
   * contact by writing, so ask again (subscribing), once per peer per connection. */
  #askAgainIfHidden(peer) {
    const known = this.presenceOf.get(peer);
    const hidden = known && !known.online && known.lastSeen === null;
    if (!hidden || !this.subscriptions.has(peer) || this.askedAgain.has(peer)) return;
    this.askedAgain.add(peer);
    try {
      this.connection.send({ action: 'getPresence', userIds: [peer], subscribe: true });
    } catch (error) {
      this.#quietly(error); // the next connection subscribes anew
    }
  }

  async #reject(itemId, sender, messageId, sentAt, problem) {
    let reason = problem;
    if (problem instanceof UnreadableMessage) {
      // Tell a changed key (the user must act) from plain garbage.
      try {
        await this.peerKeys(sender);
      } catch (error) {
        if (error instanceof KeyChanged) reason = error;
      }
    }
    const rejection = await this.history.addRejected(sender, messageId, sentAt, reason.message);
    if (rejection) this.emit('rejected', { ...rejection, keyChanged: reason instanceof KeyChanged });
    this.acks.add(itemId);
  }

  async #receiveReceipt(frame) {
    const { id: itemId, by, messageIds, status } = frame;
    if (typeof itemId !== 'string') return;
    if (RECEIPT_STATUSES.has(status) && typeof by === 'string' && Array.isArray(messageIds)) {
      const ids = messageIds.filter((id) => typeof id === 'string');
      const changed = await this.history.applyReceipt(by, ids, status);
      if (changed.length) {
        this.emit('status', { peer: by, messageIds: changed, status });
        this.outbox.movedOn(changed);
      }
    }
    this.acks.add(itemId);
  }

  #quietly(error) {
    if (!(error instanceof NotConnected)) this.log.error(error);
  }
}

function checkUserId(userId) {
  if (!isUserId(userId)) throw new TypeError(`${userId} is not ${USER_ID_RULE}`);
}

