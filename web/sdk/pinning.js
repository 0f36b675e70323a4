// Whose keys we encrypt to and accept messages from: pinned on first use, then held to, as
// client/messenger_client/pinning.py does.
//
// A peer's keys come from the server (`getKeys`) and are pinned the first time we see them
// (trust on first use, in the history). If the server later gives other keys for that user
// id, nothing is sent to them (KeyChanged, and a 'keyChanged' event) and nothing from them
// is accepted, until the user has compared the new safety number with the peer by another
// channel and called `trust`.
//
// Before sending, a peer's keys are checked with the server once per connection, so a
// change is noticed soon; offline, the pinned keys are used as they are: only their holder
// can read what we encrypt to them.
//
// A `keys` answer of a user with linked devices carries their signed device list (§8): it
// is kept only if it verifies under the account key pinned for them; one that does not is
// a key change (DeviceListRefused) until the user trusts them again. The last verified
// list is kept in the history, so that a message written offline is sealed for every device.

import { normalizeFingerprint, PeerKeys } from './crypto.js';
import { deviceListVerifies, unlinkedList } from './devices.js';
import { checkUserId } from './encoding.js';
import { DeviceListRefused, FingerprintMismatch, KeyChanged, NotConnected, RequestFailed, UnknownUser } from './errors.js';

// The history's meta key for a user's last verified device list.
const deviceListKey = (userId) => `deviceList/${userId}`;

export class KeyPinning {
  /**
   * @param {History} history where the pins are kept
   * @param {Connection} connection
   * @param {Replies} replies for `getKeys`
   * @param {object} options
   * @param {number} options.timeout ms to wait for a connection to fetch unknown keys
   * @param {(type: string, event: object) => void} options.publish the client's events
   */
  constructor(history, connection, replies, { timeout, publish }) {
    this.history = history;
    this.connection = connection;
    this.replies = replies;
    this.timeout = timeout;
    this.publish = publish;
    this.checked = new Set(); // peers whose keys we checked on this connection
  }

  /** A new connection: check every peer's keys again before sending to them. */
  newConnection() {
    this.checked.clear();
  }

  /** The peer's keys from the server, pinned on first use; KeyChanged if they differ. */
  async check(peer) {
    checkUserId(peer);
    const { keys: offered, devices } = await this.#serverKeys(peer);
    const pinned = this.history.pinned(peer);
    if (!pinned) {
      await this.history.pin(offered);
    } else if (!pinned.equals(offered)) {
      const changed = new KeyChanged(peer, pinned, offered);
      this.publish('keyChanged', { peer, pinned: changed.pinnedFingerprint, offered: changed.offeredFingerprint });
      throw changed;
    }
    await this.#keepDevices(peer, devices);
    this.checked.add(peer);
    return this.history.pinned(peer);
  }

  /** The peer's verified device list as last fetched (null: not fetched yet). */
  deviceList(peer) {
    const list = this.history.getMeta(deviceListKey(peer));
    return list && !list.refused ? list : null;
  }

  async #keepDevices(peer, devices) {
    const pinned = this.history.pinned(peer);
    if (devices === undefined || devices === null) {
      await this.history.setMeta(deviceListKey(peer), unlinkedList(pinned));
      return;
    }
    if (!deviceListVerifies(devices, peer, pinned)) {
      await this.history.setMeta(deviceListKey(peer), { refused: true });
      const refused = new DeviceListRefused(peer, pinned);
      this.publish('keyChanged', { peer, pinned: refused.pinnedFingerprint, offered: refused.offeredFingerprint, deviceList: true });
      throw refused;
    }
    await this.history.setMeta(deviceListKey(peer), devices);
  }

  /** The keys to encrypt to: checked with the server once per connection. Offline, pinned
   * keys are used without a check; keys never seen need a connection (NotConnected if none
   * opens in time). */
  async forSending(peer) {
    // A peer whose device list did not verify gets nothing, offline too, until checked again.
    const usable = Boolean(this.history.pinned(peer)) && !this.history.getMeta(deviceListKey(peer))?.refused;
    if (usable && (this.checked.has(peer) || !this.connection.session)) return this.history.pinned(peer);
    if (!usable) await this.connection.waitOpen(this.timeout);
    try {
      return await this.check(peer);
    } catch (error) {
      if (error instanceof NotConnected && usable) return this.history.pinned(peer);
      throw error;
    }
  }

  /** The keys a message from `sender` must open with: the pinned ones, or pinned now. */
  async forReading(sender) {
    return this.history.pinned(sender) ?? (await this.check(sender));
  }

  /** Pin the peer's current keys after the user compared their safety number: it must
   * match the keys the server gives now (FingerprintMismatch otherwise, nothing changes). */
  async trust(peer, safetyNumber) {
    checkUserId(peer);
    const { keys: offered, devices } = await this.#serverKeys(peer);
    if (normalizeFingerprint(safetyNumber) !== offered.fingerprint()) {
      throw new FingerprintMismatch(peer, offered.fingerprint());
    }
    await this.history.pin(offered);
    await this.#keepDevices(peer, devices);
    this.checked.add(peer);
    this.publish('keyTrusted', { peer, fingerprint: offered.fingerprint() });
    return offered;
  }

  /** The safety number of the peer's pinned keys (null: not pinned). */
  fingerprint(peer) {
    return this.history.pinned(peer)?.fingerprint() ?? null;
  }

  /** What the server holds for `peer` now: not yet compared with the pin. */
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
      return { keys: new PeerKeys(peer, answer.signKey, answer.boxKey), devices: answer.devices };
    } catch {
      throw new RequestFailed('BAD_KEYS', `the server sent malformed keys for ${peer}`);
    }
  }
}
