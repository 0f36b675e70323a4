// MessengerClient: the SDK an app uses, speaking docs/protocol.md v1.1 as the Python SDK
// (client/messenger_client/client.py) does. The client is the source of truth.
//
//   const client = await MessengerClient.open({ url, identity, backend });
//   client.on('message', ({ message }) => ...);        // and 'status', 'presence', ...
//   const message = await client.send('bob', 'hello'); // pending, in the outbox
//   await client.waitSent(message.messageId);          // the server stored it
//
// This module is the façade: it wires the parts below and reads every frame the connection
// hands it to the part it is for. What it guarantees, each in its module:
//
// - Sending (outbox.js): each text is encrypted once (NaCl Box, fresh nonce, ULID
//   messageId, strictly increasing sentAt) and its frame kept; the outbox sends one message
//   at a time, in order, and resends the same frame with backoff until `ack`, across
//   reconnects. A message keeps its frame until `delivered`, with the epoch of its `ack`
//   and the cell that stored it; a `seen` mark is kept until its `seenStored`. Both go
//   again after a failover, on every rule of §7 (failover.js): a new `epoch` in
//   `syncDone`, our home moved, or a newer directory showing another epoch for the cell
//   that stored it or another home for its recipient. With a directory (verified with the
//   deployment's key, kept in the history, directory.js), the client never polls it: it
//   fetches it when it has none, after a failed or refused connect, and when a `dv` (in
//   `ack`, `syncDone`, `pong`) names a newer version (§6). A message refused UNKNOWN_RECIPIENT within an hour
//   after its recipient's cell changed epoch is kept and sent again, backing off, for up
//   to a day.
// - Receiving (inbox.js): every `message` is deduplicated by (from, messageId), decrypted
//   with the sender's pinned key (which verifies the sender), stored, and only then acked
//   (in batches, acks.js). One whose sender's keys changed is held (ciphertext, stored,
//   then acked) and opened after `trust`; one that does not open otherwise is recorded as
//   rejected and acked as well. `sync` (paged, batched) after every (re)connect; a new `epoch` resends (§7).
// - Keys (pinning.js): pinned on first use (getKeys); different keys later are refused
//   (KeyChanged) until the user compares the safety number and calls `trust`.
// - Presence (presence.js): answers and subscribed changes, kept, subscriptions renewed on
//   every connection; ours is visible to our contacts only (the people we wrote to), told
//   to the server before our first message to someone new and, on every connection,
//   before the outbox goes; a subscribed peer who looks unknown (we were not their
//   contact) and then writes to us is asked again, once per connection.
// - Linked devices (devices.js, §8): this device's id in the connect query; messages to
//   or from a user with several devices sealed once, with a key per device; copies of our
//   own messages from our other devices shown as ours; device 1 links and removes devices.
// - Requests that expect an answer (replies.js); the connection (connection.js): pings,
//   reconnects, make-before-break; the directory and home cells (directory.js, §6).
//
// The timings' defaults are the client rules' (messenger_protocol/client_rules.py,
// generated into client-rules.generated.js), the same as the Python SDK's.

import { canonicalEndpoint, encodePlaintext, signedConnectQuery, withQuery } from './crypto.js';
import { Devices, makeLinkCode } from './devices.js';
import { checkUserId, ulid } from './encoding.js';
import { NotConnected } from './errors.js';
import { browserSocket, Connection, ConnectionState } from './connection.js';
import {
  ACK_DELAY_SECONDS,
  DEFAULT_PRESENCE_VISIBILITY,
  REQUEST_TIMEOUT_SECONDS,
  RESEND_BASE_SECONDS,
  RESEND_CAP_SECONDS,
} from './client-rules.generated.js';
import { DIRECTORY_FETCH_JITTER_SECONDS } from './limits.generated.js';
import { Directory, homeCellOf } from './directory.js';
import { EpochChanges, movedSince, SINGLE_CELL, storedAt } from './failover.js';
import { History } from './history.js';
import { EPOCH_KEY, Inbox } from './inbox.js';
import { MAX_CONTACTS, PRIMARY_DEVICE_ID } from './limits.generated.js';
import { Outbox } from './outbox.js';
import { KeyPinning } from './pinning.js';
import { PresenceTracker } from './presence.js';
import { Replies } from './replies.js';
import { PROTOCOL_SCHEMAS } from './schema.js';
import { Emitter } from './util.js';

/** Timings (milliseconds). The defaults suit a real network; tests shorten them. */
export const DEFAULT_SETTINGS = Object.freeze({
  requestTimeout: REQUEST_TIMEOUT_SECONDS * 1000,
  // A message not acked within this long is resent (the same frame), then backing off.
  resendBase: RESEND_BASE_SECONDS * 1000,
  resendCap: RESEND_CAP_SECONDS * 1000,
  // Acks of items that arrive together (a sync page) go out in one frame.
  ackDelay: ACK_DELAY_SECONDS * 1000,
  // Who may see our presence (§2 setPresenceVisibility): 'contacts' (the people we chat
  // with), 'everyone' or 'nobody'; null leaves the server's setting alone.
  presenceVisibility: DEFAULT_PRESENCE_VISIBILITY,
  // With a directory: the most a client waits before fetching a newer version a `dv`
  // names (§6: so that a change does not bring every client at the same moment).
  directoryJitter: DIRECTORY_FETCH_JITTER_SECONDS * 1000,
});

// The history's meta keys for who may see our presence: the user's choice on this device
// until the server has it, and (device 1) the settings' default the account last got.
const VISIBILITY_KEY = 'presenceVisibility';
const DEFAULT_VISIBILITY_KEY = 'presenceVisibilityDefault';
export const VISIBILITIES = Object.freeze(['everyone', 'contacts', 'nobody']);

export class MessengerClient extends Emitter {
  /**
   * @param {object} options
   * @param {Identity} options.identity our keys
   * @param {History} options.history the local history (History.load(backend, userId))
   * @param {string} [options.url] a cell's WebSocket URL, or
   * @param {string} [options.directoryUrl] the directory's URL (§6)
   * @param {string} [options.directoryKey] the deployment's directory public key (base64url;
   *   none: the one the history kept, or the one a directory on this machine serves)
   * @param {(url: string) => WebSocket} [options.createSocket] default: the browser's
   * @param {typeof fetch} [options.fetch] for the directory
   * @param {(frame: object) => void} [options.checkReceived] tests: called on every frame
   */
  constructor({ identity, history, url, directoryUrl, directoryKey, createSocket = browserSocket, fetch, settings, policy, schemas, checkReceived, log }) {
    super();
    if (!url === !directoryUrl) throw new TypeError('give a url or a directoryUrl');
    this.identity = identity;
    this.history = history;
    this.url = url ?? null;
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    this.schemas = schemas ?? PROTOCOL_SCHEMAS;
    this.checkReceived = checkReceived ?? null;
    this.log = log ?? console;
    const onCellsMoved = (document, cells) => this.#cellsMoved(document, cells);
    this.directory = directoryUrl
      ? new Directory(directoryUrl, { fetch, key: directoryKey, history, onCellsMoved, jitter: this.settings.directoryJitter, log: this.log })
      : null;
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
    const { requestTimeout, resendBase, resendCap, ackDelay } = this.settings;
    this.epochChanges = new EpochChanges(history);
    this.outbox = new Outbox(history, this.connection, {
      resendBase,
      resendCap,
      publish,
      log: this.log,
      keepUnknownRecipient: (peer) => this.#keepsUnknownRecipient(peer),
      reseal: (messageId, peer) => this.#reseal(messageId, peer),
    });
    this.replies = new Replies(this.connection, requestTimeout);
    this.pinning = new KeyPinning(history, this.connection, this.replies, { timeout: requestTimeout, publish });
    this.devices = new Devices(history, identity, { pinning: this.pinning, replies: this.replies });
    this.presenceTracker = new PresenceTracker(this.connection, this.replies, publish);
    this.inbox = new Inbox(history, identity, {
      pinning: this.pinning,
      devices: this.devices,
      connection: this.connection,
      outbox: this.outbox,
      presence: this.presenceTracker,
      ackDelay,
      publish,
      log: this.log,
      onEpoch: (epoch) => this.#homeEpoch(epoch),
      resendBase,
      resendCap,
    });
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

  /** Start connecting (in the background) and the outbox; once started, connect again after
   * the server closed the connection for good (REPLACED: another connection of this device
   * took its place, docs/protocol.md §3 Closing). */
  start() {
    if (this.outboxRun) {
      this.connection.start();
      return;
    }
    this.outboxRun = this.outbox.run();
    this.connection.start();
  }

  /** Send the acks and seen marks not sent yet, then disconnect. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.inbox.close();
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
    if (!this.inbox.synced) await this.next('synced', () => true, timeout);
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
    const keys = await this.pinning.forSending(peer);
    const contacts = this.contacts();
    if (!contacts.includes(peer) && this.connection.session) {
      // The peer may see us from now on: the server hears it before the message, so that
      // they see us when it reaches them (offline, the next connection tells it first).
      await this.#sharePresence([peer, ...contacts].slice(0, MAX_CONTACTS));
    }
    const messageId = ulid();
    const sentAt = this.#nextSentAt();
    const frame = await this.devices.messageFrame(peer, keys, messageId, text, sentAt);
    const message = await this.history.addOutgoing(peer, messageId, text, sentAt, frame);
    this.emit('message', { message });
    this.outbox.wake();
    return message;
  }

  /** Until the server stored our message; SendRefused / UnknownUser if it refused it. */
  waitSent(messageId, timeout = 30_000) {
    return this.outbox.waitSent(messageId, timeout);
  }

  /** STALE_DEVICES (§8): the message sealed for the device lists the server holds now. */
  async #reseal(messageId, peer) {
    const record = this.history.own(messageId);
    const frame = await this.devices.reseal(peer, messageId, record.text, record.sentAt);
    await this.history.replaceFrame(messageId, frame);
    return frame;
  }

  #nextSentAt() {
    // Strictly increasing, so our own messages keep their order even within one millisecond.
    this.lastSentAt = Math.max(Date.now(), this.lastSentAt + 1);
    return this.lastSentAt;
  }

  // --- keys --------------------------------------------------------------------------

  /** The peer's keys from the server, pinned on first use; KeyChanged if they differ. */
  peerKeys(peer) {
    return this.pinning.check(peer);
  }

  /** Pin the peer's current keys after the user compared their safety number; what was
   * held from them is then opened and shown, in order ('message' events). */
  async trust(peer, safetyNumber) {
    const keys = await this.pinning.trust(peer, safetyNumber);
    await this.inbox.releaseHeld(peer);
    return keys;
  }

  /** Messages from `sender` (everyone's without one) held until their new keys are trusted. */
  held(sender) {
    return this.history.held(sender);
  }

  /** Our own safety number (the account key's, on every device), or the one of a peer's
   * pinned keys (null: not pinned). */
  fingerprint(peer) {
    if (peer === undefined) return this.identity.isPrimary ? this.identity.fingerprint() : this.pinning.fingerprint(this.userId);
    return this.pinning.fingerprint(peer);
  }

  // --- linked devices (§8) ------------------------------------------------------------

  get deviceId() {
    return this.identity.deviceId;
  }

  /** The code this device shows to be linked by device 1 (text; the app draws it as QR). */
  linkCode() {
    return makeLinkCode({ userId: this.userId, deviceId: this.deviceId, ...this.identity.publicKeys.toJSON() });
  }

  /** Our devices: {userId, version, devices: [{deviceId, signKey, boxKey}], sig}. */
  deviceList() {
    return this.devices.ownList({ refresh: !this.identity.isPrimary });
  }

  /** Device 1: link the device that shows this code; the list stored. InvalidLinkCode,
   * NotPrimaryDevice or RequestFailed, nothing changed. */
  linkDevice(code) {
    return this.devices.link(code);
  }

  /** Device 1: remove a linked device (its connections close, its queue is deleted). */
  removeDevice(deviceId) {
    return this.devices.remove(deviceId);
  }

  // --- presence ----------------------------------------------------------------------

  /** Who is online now; with `subscribe`, changes arrive as 'presence' events, and the
   * subscription is renewed on every reconnect. */
  getPresence(userIds, { subscribe = false } = {}) {
    return this.presenceTracker.get(userIds, { subscribe });
  }

  /** The last known presence of a user (kept up to date for subscriptions). */
  presence(userId) {
    return this.presenceTracker.lastKnown(userId);
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

  /** Who may see the user's presence from now on ('everyone', 'contacts' or 'nobody'), on
   * every device of theirs: told to the server now, or kept until the next connection. */
  async setVisibility(visibility) {
    if (!VISIBILITIES.includes(visibility)) throw new TypeError(`visibility is one of ${VISIBILITIES.join(', ')}`);
    await this.history.setMeta(VISIBILITY_KEY, visibility);
    const fallback = this.settings.presenceVisibility;
    // A choice supersedes the settings' default: it is never sent after it.
    if (fallback) await this.history.setMeta(DEFAULT_VISIBILITY_KEY, fallback);
    await this.#sharePresence();
  }

  /** The choice made on this device that the server has not taken yet, or null. */
  get pendingVisibility() {
    return this.history.getMeta(VISIBILITY_KEY) ?? null;
  }

  /** Keep the server's presence visibility as the user chose it, and our contacts on its
   * list (best effort: a new connection tries again). The settings' default is the
   * account's first setting, given by device 1 (and again if its app's default changes); a
   * linked device takes the user's setting as it is (§8). */
  async #sharePresence(contacts = this.contacts()) {
    if (!this.supports('setPresenceVisibility')) return;
    const chosen = this.pendingVisibility;
    const fallback = this.settings.presenceVisibility;
    try {
      if (chosen) {
        await this.presenceTracker.choose(chosen, contacts);
        await this.history.setMeta(VISIBILITY_KEY, null);
      } else if (!fallback) {
        return;
      } else if (this.deviceId === PRIMARY_DEVICE_ID && this.history.getMeta(DEFAULT_VISIBILITY_KEY) !== fallback) {
        const given = () => this.history.getMeta(DEFAULT_VISIBILITY_KEY) === fallback;
        const answer = await this.presenceTracker.choose(fallback, contacts, { unless: given });
        if (answer === null) {
          // Given meanwhile (by this connection's first call, or a choice): our contacts
          // are still to be on the list.
          await this.presenceTracker.addContacts(contacts);
        } else {
          await this.history.setMeta(DEFAULT_VISIBILITY_KEY, fallback);
        }
      } else {
        await this.presenceTracker.addContacts(contacts);
      }
    } catch (error) {
      this.#quietly(error);
    }
  }

  // --- settings held by the server ----------------------------------------------------

  /** Presence visibility, contacts and blocked users as the server holds them (§2
   * getSettings): `{visibility, contacts, blocked}`. */
  async getSettings() {
    const answer = await this.replies.request({ action: 'getSettings' }, (reply) => reply.type === 'settings');
    return { visibility: answer.visibility, contacts: answer.contacts, blocked: answer.blocked };
  }

  /** Block users (`add`), unblock them (`remove`), or replace the whole list (`userIds`);
   * resolves to the number now blocked (§2 setBlocked). The blocked are never told: what
   * they send is acknowledged as usual and goes nowhere. A TypeError before anything is
   * sent for what the server would refuse; RequestFailed if it refuses. */
  async setBlocked({ add, remove, userIds } = {}) {
    const frame = { action: 'setBlocked' };
    for (const [name, ids] of Object.entries({ userIds, add, remove })) {
      if (ids === undefined) continue;
      if (!Array.isArray(ids)) throw new TypeError(`${name}: a list of user ids`);
      ids.forEach(checkUserId);
      frame[name] = [...ids];
    }
    const problems = this.schemas.problems('client.setBlocked', frame);
    if (problems.length) throw new TypeError(`setBlocked: ${problems.join('; ')}`);
    const answer = await this.replies.request(frame, (reply) => reply.type === 'blocked');
    return answer.count;
  }

  // --- reading -----------------------------------------------------------------------

  /** Mark the conversation read: the peer gets a `seen` receipt (now, or once online). */
  async markSeen(peer) {
    const ids = await this.history.markRead(peer);
    try {
      await this.inbox.reportSeen();
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

  // --- frames from the server ----------------------------------------------------------

  #onFrame(frame, session) {
    this.checkReceived?.(frame);
    // The directory's newest version, as the cell knows it (§6: instead of polling).
    if (['ack', 'syncDone', 'pong'].includes(frame.type) && this.directory && Number.isInteger(frame.dv)) {
      this.#learnDirectoryVersion(frame.dv);
    }
    switch (frame.type) {
      case 'message':
      case 'receipt':
      case 'items':
      case 'syncDone':
        this.inbox.put(frame, session); // stored in order; the reader never waits on them
        break;
      case 'ack':
        if (typeof frame.messageId === 'string') {
          const peer = this.history.own(frame.messageId)?.peer ?? null;
          const stored = this.#storedAt(peer, frame.epoch, frame.dv);
          this.outbox.acked(frame.messageId, Number.isInteger(frame.serverTs) ? frame.serverTs : null, stored)
            .catch((error) => this.#quietly(error));
        }
        break;
      case 'seenStored':
        if (typeof frame.to === 'string' && Array.isArray(frame.messageIds)) {
          const stored = this.#storedAt(frame.to, frame.epoch, null);
          // In the inbox's order, after the marks it answers were recorded as sent.
          this.inbox.items = this.inbox.items
            .then(() => this.inbox.seenStored(frame.to, frame.messageIds, stored))
            .catch((error) => this.#quietly(error));
        }
        this.replies.answer(frame);
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
        if (frame.type === 'presence') this.presenceTracker.update(frame);
        this.replies.answer(frame); // keys, presence, pong, presenceVisibility: answers
    }
  }

  #onError(frame) {
    const code = String(frame.code);
    const message = String(frame.message ?? '');
    const retryAfter = Number.isInteger(frame.retryAfter) ? frame.retryAfter : null;
    const handled =
      this.outbox.refused(frame.ref, code, message, retryAfter) ||
      this.replies.refuse(frame.ref, code, message) ||
      (frame.ref === 'sync' && this.inbox.syncRefused(code, retryAfter)) ||
      (frame.ref === 'ack' && this.inbox.ackRefused(code, retryAfter)) ||
      (frame.ref === 'markSeen' && this.inbox.seenRefused(code, retryAfter));
    if (!handled) this.emit('serverError', { code, message, ref: typeof frame.ref === 'string' ? frame.ref : null });
  }

  // --- the connection ----------------------------------------------------------------

  async #signedUrl(refresh) {
    let url = this.url;
    if (this.directory) {
      const home = await this.directory.home(this.userId, { refresh });
      const previous = this.history.getMeta('homeUrl');
      if (previous && previous !== home.url) {
        // Rule 2 (§7): our home moved: what has no `delivered` receipt goes again, every
        // seen mark (they go on the connection being made), and who may see us is told again.
        this.presenceTracker.homeMoved();
        await this.outbox.resendUndelivered();
        await this.inbox.resendSeen();
      }
      if (previous !== home.url) await this.history.setMeta('homeUrl', home.url);
      url = home.url;
    }
    // Signed for this endpoint (§1 `aud`): worthless to anyone who relays it elsewhere.
    return withQuery(url, await signedConnectQuery(this.identity, Date.now(), undefined, { aud: canonicalEndpoint(url) }));
  }

  /** Every new connection: sync, renew subscriptions, seen marks, and who may see us; the
   * outbox goes once the server has our visibility (`session.ready`), so that no message
   * of ours reaches a peer who could not see us yet. */
  async #onOpen(session) {
    this.inbox.newConnection();
    this.pinning.newConnection();
    this.presenceTracker.newConnection();
    // Best effort (the next connection tries again), and never in the way of the sync.
    const visibility = this.#sharePresence();
    // Rule 3 on the directory this connection was made with (fetched, or kept: a restart).
    if (this.directory?.document) this.#directoryNews(this.directory.document).catch((error) => this.#quietly(error));
    try {
      this.inbox.requestSync();
      this.presenceTracker.renewSubscriptions();
      await this.inbox.reportSeen();
    } finally {
      await visibility;
    }
    this.outbox.wake();
  }

  #onStatus(status) {
    if (status.state !== ConnectionState.ONLINE) this.inbox.connectionLost();
    this.emit('connection', status);
    // Final until the app starts the client again: what it sends meanwhile waits.
    if (status.state === ConnectionState.REPLACED) this.emit('replaced', status);
    // §8: device 1 removed this device; the connection stays down (its handshakes would be
    // refused) until the app starts it again.
    if (status.state === ConnectionState.REMOVED) this.emit('deviceRemoved', { userId: this.userId, deviceId: this.deviceId, error: status.error });
  }

  // --- failover (docs/protocol.md §7; the rules: failover.js) ------------------------------

  /** Where an answer (`ack`, `seenStored`) says a frame for `peer` was stored: its epoch,
   * the peer's home cell by our directory now, the directory version known. */
  #storedAt(peer, epoch, dv) {
    const document = this.directory?.document;
    if (!document) return storedAt(epoch, null, dv);
    const cell = peer ? homeCellOf(document, peer) : null;
    return storedAt(epoch, cell, Math.max(document.version, Number.isInteger(dv) ? dv : 0));
  }

  /** A `syncDone` named our home cell's epoch: remember when it changed. */
  async #homeEpoch(epoch) {
    const last = this.history.getMeta(EPOCH_KEY);
    if (last !== undefined && last !== epoch) {
      // §8: device 1 sends its list again, in case the failover lost it.
      this.devices.sendListAgain().catch((error) => this.#quietly(error));
    }
    const document = this.directory?.document;
    const cell = document ? homeCellOf(document, this.userId) : SINGLE_CELL;
    await this.epochChanges.note(cell, epoch, Date.now());
  }

  /** The directory moved these cells (another url): rule 3, the moved cells counting as
   * a new epoch. */
  async #cellsMoved(document, cells) {
    await this.#directoryNews(document, cells);
  }

  /** Rule 3 on a directory just read: what it shows stored elsewhere goes again. */
  async #directoryNews(document, moved = new Set()) {
    if (!document) return;
    await this.epochChanges.noteDirectory(document, Date.now());
    const again = (peer, stored) => movedSince(stored, document, peer, moved);
    await this.outbox.resendUndelivered(again);
    if (await this.inbox.resendSeen(again)) {
      try {
        await this.inbox.reportSeen();
      } catch (error) {
        if (!(error instanceof NotConnected)) throw error; // else on the next connection
      }
    }
  }

  /** UNKNOWN_RECIPIENT: keep the message if the recipient's cell changed epoch within the
   * hour (§7), as the newest directory says. Our cell names the newest version in `pong`
   * (§6: the directory is never polled), fetched at once if newer: the answer cannot wait
   * for the spread a `dv` in passing gets. */
  async #keepsUnknownRecipient(peer) {
    const document = this.directory?.document;
    if (!document) return this.epochChanges.keepsUnknownRecipient(SINGLE_CELL, Date.now());
    try {
      const pong = await this.replies.request({ action: 'ping' }, (frame) => frame.type === 'pong');
      if (Number.isInteger(pong.dv)) await this.directory.learnVersion(pong.dv, { atOnce: true });
    } catch (error) {
      this.#quietly(error);
    }
    await this.#directoryNews(this.directory.document);
    return this.epochChanges.keepsUnknownRecipient(homeCellOf(this.directory.document, peer), Date.now());
  }

  /** Until the messages this client sent again after a failover (§7) are answered and our
   * `seen` marks too, or `timeout` ms: {resent, left, seenMarksLeft, kept}. What is left
   * stays in the history for the next connection. */
  async waitResends(timeout) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const left = [...this.outbox.resent].filter((messageId) => this.history.needsSending(messageId)).length;
      const { seenMarks, kept } = this.history.outstanding();
      if ((!left && !seenMarks) || Date.now() >= deadline) {
        return { resent: this.outbox.resent.size, left, seenMarksLeft: seenMarks, kept };
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A `dv` named a version: fetched in the background if newer (directory.js), then rule 3. */
  #learnDirectoryVersion(version) {
    const before = this.directory.document;
    this.directory.learnVersion(version)
      .then(() => (this.directory.document !== before ? this.#directoryNews(this.directory.document) : null))
      .catch((error) => this.#quietly(error));
  }

  #quietly(error) {
    if (!(error instanceof NotConnected)) this.log.error(error);
  }
}
