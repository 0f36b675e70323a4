// Linked devices (docs/protocol.md §8), as messenger_protocol/devices.py and the Python
// SDK do them: the signed device list, link codes, a message sealed once for several
// devices, and the `Devices` room of the client.
//
// - Device `1` holds the account key (the one peers pin): it alone signs the list and sends
//   `setDevices`; it links a device from the code that device shows, and removes one. It
//   keeps the list it last sent, and sends it again when its home's epoch changed (§7).
// - Every list a peer's `keys` answer carries is verified under the account key pinned for
//   them (pinning.js): one that does not verify is a key change.
// - To or from a user with more than one device, a text is sealed once under a fresh key K
//   (SecretBox) and K is boxed for each of the recipient's devices (`copies`) and each of
//   our other devices (`selfCopies`); STALE_DEVICES (a list changed meanwhile) fetches the
//   lists again and seals the same message anew (outbox.js asks `reseal`).
// - A copy is opened with Box(this device's key, the sending device's boxKey, from the
//   sender's verified list); a copy of our own message (from us, `to` a peer) is stored as
//   our own message, sent by another of our devices.

import nacl from 'tweetnacl';

import { checkDeviceId, encodePlaintext, openSealed, PeerKeys, seal, sendMessageFrame } from './crypto.js';
import { b64urlDecode, b64urlEncode, fromUtf8, isUserId, randomBytes, utf8 } from './encoding.js';
import { InvalidLinkCode, MessageTooLong, NotPrimaryDevice, UnreadableMessage } from './errors.js';
import {
  BOX_NONCE_BYTES,
  DEVICES_SIGNING_PREFIX,
  KEY_BYTES,
  LINK_CODE_PREFIX,
  MAX_DEVICES,
  MAX_FRAME_BYTES,
  MAX_LINK_CODE_CHARS,
  PRIMARY_DEVICE_ID,
} from './limits.generated.js';

// The history's meta key for the list device 1 last sent (and the server accepted).
const OWN_LIST_KEY = 'deviceList';

// --- the signed device list --------------------------------------------------------------

/** The list of a user who never linked a device: version 0, device 1 alone (never sent). */
export function unlinkedList(keys) {
  return { userId: keys.userId, version: 0, devices: [{ deviceId: PRIMARY_DEVICE_ID, signKey: keys.signKey, boxKey: keys.boxKey }], sig: null };
}

/** The text the account key signs (§8): prefix, user id, version, one line per device. */
export function deviceListSigningText({ userId, version, devices }) {
  const lines = [DEVICES_SIGNING_PREFIX, userId, String(version), ...devices.map((d) => `${d.deviceId} ${d.signKey} ${d.boxKey}`)];
  return utf8(`${lines.join('\n')}\n`);
}

/** The list signed by `identity` (device 1: the account key). */
export async function signDeviceList(identity, { userId, version, devices }) {
  const list = { userId, version, devices: devices.map(({ deviceId, signKey, boxKey }) => ({ deviceId, signKey, boxKey })) };
  return { ...list, sig: b64urlEncode(await identity.sign(deviceListSigningText(list))) };
}

/** Whether `list` is a well-formed device list of `userId` signed by `accountSignKey`
 * (base64url), with device 1 carrying the account keys. */
export function deviceListVerifies(list, userId, accountKeys) {
  try {
    if (list?.userId !== userId || !Number.isInteger(list.version) || !Array.isArray(list.devices)) return false;
    if (list.devices.length < 1 || list.devices.length > MAX_DEVICES) return false;
    const ids = new Set(list.devices.map((device) => device.deviceId));
    if (ids.size !== list.devices.length) return false;
    for (const device of list.devices) {
      checkDeviceId(device.deviceId);
      new PeerKeys(userId, device.signKey, device.boxKey); // 32-byte keys, or TypeError
    }
    const primary = list.devices.find((device) => device.deviceId === PRIMARY_DEVICE_ID);
    if (primary?.signKey !== accountKeys.signKey || primary.boxKey !== accountKeys.boxKey) return false;
    return nacl.sign.detached.verify(deviceListSigningText(list), b64urlDecode(list.sig), b64urlDecode(accountKeys.signKey));
  } catch {
    return false;
  }
}

// --- link codes ------------------------------------------------------------------------------

/** The code a new device shows (§8): "ml1:" + base64url(UTF-8 JSON), fields in this order. */
export function makeLinkCode({ userId, deviceId, signKey, boxKey }) {
  return LINK_CODE_PREFIX + b64urlEncode(utf8(JSON.stringify({ userId, deviceId, signKey, boxKey })));
}

/** A link code as a person pasted it: {userId, deviceId, signKey, boxKey}; InvalidLinkCode
 * says what is wrong. */
export function parseLinkCode(text) {
  const code = typeof text === 'string' ? text.trim() : '';
  if (!code.startsWith(LINK_CODE_PREFIX)) throw new InvalidLinkCode(`a link code starts with ${LINK_CODE_PREFIX}`);
  if (code.length > MAX_LINK_CODE_CHARS) throw new InvalidLinkCode(`a link code has at most ${MAX_LINK_CODE_CHARS} characters`);
  let document;
  try {
    document = JSON.parse(fromUtf8(b64urlDecode(code.slice(LINK_CODE_PREFIX.length))));
  } catch {
    throw new InvalidLinkCode('a link code carries base64url of UTF-8 JSON');
  }
  const { userId, deviceId, signKey, boxKey } = document ?? {};
  if (!isUserId(userId)) throw new InvalidLinkCode('the link code names no valid user id');
  try {
    checkDeviceId(deviceId);
    new PeerKeys(userId, signKey, boxKey);
  } catch (error) {
    throw new InvalidLinkCode(error.message);
  }
  if (deviceId === PRIMARY_DEVICE_ID) throw new InvalidLinkCode(`deviceId: ${PRIMARY_DEVICE_ID} is the account's own device`);
  return { userId, deviceId, signKey, boxKey };
}

// --- one message for several devices -------------------------------------------------------

/**
 * {body, nonce, copies, selfCopies}: `plaintext` sealed once under a fresh K (SecretBox), K
 * boxed by `identity` for each recipient device and each of our other devices. `fixed`
 * (tests, vectors): {messageKey, nonce, keyNonces: {deviceId: bytes}}.
 */
export async function sealForDevices(identity, plaintext, recipientDevices, ownOtherDevices, fixed = {}) {
  const messageKey = fixed.messageKey ?? randomBytes(KEY_BYTES);
  const nonce = fixed.nonce ?? randomBytes(BOX_NONCE_BYTES);
  const wrap = async (device) => {
    const sealed = await seal(identity, device, messageKey, fixed.keyNonces?.[device.deviceId]);
    return { device: device.deviceId, key: sealed.body, keyNonce: sealed.nonce };
  };
  const copies = [];
  for (const device of recipientDevices) copies.push(await wrap(device));
  const selfCopies = [];
  for (const device of ownOtherDevices) selfCopies.push(await wrap(device));
  return { body: b64urlEncode(nacl.secretbox(plaintext, nonce, messageKey)), nonce: b64urlEncode(nonce), copies, selfCopies };
}

/** The plaintext of a copy sealed for this device by `senderDevice` (from the sender's
 * verified list); UnreadableMessage if it does not open. */
export async function openCopy(identity, senderDevice, { key, keyNonce, body, nonce }) {
  const messageKey = await openSealed(identity, senderDevice, key, keyNonce);
  if (messageKey.length !== KEY_BYTES) throw new UnreadableMessage(`a message key is ${KEY_BYTES} bytes`);
  let opened = null;
  try {
    opened = nacl.secretbox.open(b64urlDecode(body), b64urlDecode(nonce), messageKey);
  } catch {
    opened = null;
  }
  if (!opened) throw new UnreadableMessage('the body does not open with its message key');
  return opened;
}

/** The sendMessage frame (JSON text) with copies (§8), in the Python SDK's field order. */
export async function devicesMessageFrame(identity, theirs, mine, messageId, text, sentAt, fixed) {
  const others = mine.devices.filter((device) => device.deviceId !== identity.deviceId);
  const sealed = await sealForDevices(identity, encodePlaintext(text), theirs.devices, others, fixed);
  const frame = JSON.stringify({
    action: 'sendMessage',
    body: sealed.body,
    messageId,
    to: theirs.userId,
    nonce: sealed.nonce,
    sentAt,
    devices: theirs.version,
    copies: sealed.copies,
    selfDevices: mine.version,
    selfCopies: sealed.selfCopies,
  });
  if (utf8(frame).length > MAX_FRAME_BYTES) throw new MessageTooLong(b64urlDecode(sealed.body).length);
  return frame;
}

// --- the client's room ---------------------------------------------------------------------

export class Devices {
  /**
   * @param {History} history where device 1 keeps the list it sent
   * @param {Identity|WebCryptoIdentity} identity this device's keys
   * @param {object} parts
   * @param {KeyPinning} parts.pinning peers' verified lists (and ours, on a linked device)
   * @param {Replies} parts.replies for `setDevices`
   */
  constructor(history, identity, { pinning, replies }) {
    this.history = history;
    this.identity = identity;
    this.pinning = pinning;
    this.replies = replies;
  }

  get userId() {
    return this.identity.userId;
  }

  /** Our device list: the one device 1 sent last, or (a linked device) the one the server
   * gives, verified under our account key. */
  async ownList({ refresh = false } = {}) {
    if (this.identity.isPrimary) return this.history.getMeta(OWN_LIST_KEY) ?? unlinkedList(this.identity.publicKeys);
    if (refresh) await this.pinning.check(this.userId);
    else await this.pinning.forSending(this.userId);
    return this.pinning.deviceList(this.userId);
  }

  /** A message to `peer` (whose keys are checked): the v1.1 frame while neither side has
   * linked devices, else sealed for every device (§8). */
  async messageFrame(peer, keys, messageId, text, sentAt) {
    const theirs = this.pinning.deviceList(peer) ?? unlinkedList(keys);
    const mine = await this.ownList();
    if (theirs.devices.length < 2 && mine.devices.length < 2) {
      return sendMessageFrame(this.identity, keys, messageId, text, sentAt);
    }
    return devicesMessageFrame(this.identity, theirs, mine, messageId, text, sentAt);
  }

  /** STALE_DEVICES: both lists fetched again, the same message sealed for them. */
  async reseal(peer, messageId, text, sentAt) {
    const keys = await this.pinning.check(peer);
    if (!this.identity.isPrimary) await this.ownList({ refresh: true });
    return this.messageFrame(peer, keys, messageId, text, sentAt);
  }

  /** The plaintext of a `message` frame that carries a copy for this device. */
  async open(frame) {
    const device = await this.#senderDevice(frame.from, frame.fromDevice);
    return openCopy(this.identity, device, frame);
  }

  async #senderDevice(sender, deviceId) {
    const find = async (refresh) => {
      const list = sender === this.userId ? await this.ownList({ refresh }) : await this.#peerList(sender, refresh);
      return list?.devices.find((device) => device.deviceId === deviceId) ?? null;
    };
    const device = (await find(false)) ?? (await find(true)); // a device linked since
    if (!device) throw new UnreadableMessage(`${sender} has no device ${deviceId} in its signed list`);
    return device;
  }

  async #peerList(sender, refresh) {
    if (refresh) await this.pinning.check(sender);
    else await this.pinning.forReading(sender);
    return this.pinning.deviceList(sender);
  }

  // --- device 1: linking and removing ----------------------------------------------------

  /** Add the device whose link code this is (§8); the list the server stored. */
  async link(code) {
    const added = parseLinkCode(code);
    if (added.userId !== this.userId) throw new InvalidLinkCode(`this code links a device of ${added.userId}, not of ${this.userId}`);
    const list = await this.ownList();
    const same = list.devices.find((device) => device.deviceId === added.deviceId);
    if (same && same.signKey === added.signKey && same.boxKey === added.boxKey) return list;
    if (same) throw new InvalidLinkCode(`a device ${added.deviceId} is already linked: remove it first`);
    if (list.devices.length >= MAX_DEVICES) throw new InvalidLinkCode(`at most ${MAX_DEVICES} devices`);
    return this.#setDevices([...list.devices, { deviceId: added.deviceId, signKey: added.signKey, boxKey: added.boxKey }]);
  }

  /** Remove a linked device: its queue is deleted and it can no longer connect. */
  async remove(deviceId) {
    const list = await this.ownList();
    if (deviceId === PRIMARY_DEVICE_ID) throw new TypeError(`device ${PRIMARY_DEVICE_ID} holds the account key and stays`);
    if (!list.devices.some((device) => device.deviceId === deviceId)) throw new TypeError(`no device ${deviceId}`);
    return this.#setDevices(list.devices.filter((device) => device.deviceId !== deviceId));
  }

  /** Device 1 after its home's epoch changed (§8): the list again, in case it was lost. */
  async sendListAgain() {
    const list = this.history.getMeta(OWN_LIST_KEY);
    if (!this.identity.isPrimary || !list || list.version < 1) return;
    await this.#send(list);
  }

  async #setDevices(devices) {
    if (!this.identity.isPrimary) throw new NotPrimaryDevice(`only device ${PRIMARY_DEVICE_ID} changes the device list`);
    const list = await this.ownList();
    const signed = await signDeviceList(this.identity, { userId: this.userId, version: list.version + 1, devices });
    return this.#send(signed);
  }

  async #send(list) {
    const frame = { action: 'setDevices', version: list.version, devices: list.devices, sig: list.sig };
    const answer = await this.replies.request(frame, (reply) => reply.type === 'devices');
    const stored = { userId: answer.userId, version: answer.version, devices: answer.devices, sig: answer.sig };
    if (!deviceListVerifies(stored, this.userId, this.identity.publicKeys)) {
      throw new UnreadableMessage('the server answered setDevices with a list we did not sign');
    }
    await this.history.setMeta(OWN_LIST_KEY, stored);
    return stored;
  }
}
