// The client's cryptography, as the Python SDK does it (client/messenger_client/crypto.py,
// keystore.py): identities, the signed connect query (docs/protocol.md §1), the safety number,
// NaCl Box (§5). tests/vectors/crypto.json proves both languages compute the same bytes.

import nacl from 'tweetnacl';
import { sha256 } from '@noble/hashes/sha2.js';

import {
  b64urlDecode,
  b64urlEncode,
  fromUtf8,
  isUserId,
  randomBytes,
  USER_ID_RULE,
  utf8,
} from './encoding.js';
import { MessageTooLong, UnreadableMessage } from './errors.js';
import {
  BOUND_CONNECT_SIGNING_PREFIX,
  BOX_NONCE_BYTES,
  CONNECT_SIGNING_PREFIX,
  DEVICE_ID_PATTERN,
  KEY_BYTES,
  MAX_BODY_BYTES,
  MAX_FRAME_BYTES,
  PRIMARY_DEVICE_ID,
} from './limits.generated.js';

// Safety numbers are domain-separated so they can never collide with another hash use.
const FINGERPRINT_DOMAIN = 'messenger-fingerprint-v1\n';
const FINGERPRINT_GROUPS = 6;
// 32 random bytes: 43 characters of [A-Za-z0-9_-], inside the nonce rule (16-64).
const CONNECT_NONCE_BYTES = 32;
// What a NaCl Box adds to a plaintext: the 16-byte Poly1305 tag.
const BOX_OVERHEAD_BYTES = nacl.box.overheadLength;

/** A user's two public keys as the protocol carries them (base64url). */
export class PeerKeys {
  constructor(userId, signKey, boxKey) {
    if (!isUserId(userId)) throw new TypeError(`${userId} is not ${USER_ID_RULE}`);
    for (const key of [signKey, boxKey]) {
      if (b64urlDecode(key).length !== KEY_BYTES) {
        throw new TypeError(`a public key must be ${KEY_BYTES} bytes`);
      }
    }
    this.userId = userId;
    this.signKey = signKey;
    this.boxKey = boxKey;
    Object.freeze(this);
  }

  equals(other) {
    return (
      other instanceof PeerKeys &&
      other.userId === this.userId &&
      other.signKey === this.signKey &&
      other.boxKey === this.boxKey
    );
  }

  fingerprint() {
    return fingerprint(this.userId, b64urlDecode(this.signKey), b64urlDecode(this.boxKey));
  }

  toJSON() {
    return { userId: this.userId, signKey: this.signKey, boxKey: this.boxKey };
  }
}

/**
 * Our user id, this device's id and its private keys (seeds, tweetnacl). Kept on the device
 * only: never serialized to text. WebCryptoIdentity (webcrypto.js) is the same with
 * non-extractable keys; the SDK only calls `sign` and `boxKeyWith`, both async.
 */
export class Identity {
  constructor(userId, signSeed, boxSecret, deviceId = PRIMARY_DEVICE_ID) {
    if (!isUserId(userId)) throw new TypeError(`${userId} is not ${USER_ID_RULE}`);
    checkDeviceId(deviceId);
    if (signSeed.length !== KEY_BYTES || boxSecret.length !== KEY_BYTES) {
      throw new TypeError(`private keys are ${KEY_BYTES} bytes`);
    }
    this.userId = userId;
    this.deviceId = deviceId;
    const signing = nacl.sign.keyPair.fromSeed(signSeed);
    const box = nacl.box.keyPair.fromSecretKey(boxSecret);
    // Private halves are not enumerable: JSON.stringify and console views leave them out.
    Object.defineProperties(this, {
      signSeed: { value: Uint8Array.from(signSeed) },
      signSecretKey: { value: signing.secretKey },
      boxSecret: { value: Uint8Array.from(boxSecret) },
    });
    this.publicKeys = new PeerKeys(
      userId,
      b64urlEncode(signing.publicKey),
      b64urlEncode(box.publicKey),
    );
    Object.freeze(this);
  }

  static generate(userId, deviceId = PRIMARY_DEVICE_ID) {
    return new Identity(userId, randomBytes(KEY_BYTES), randomBytes(KEY_BYTES), deviceId);
  }

  get isPrimary() {
    return this.deviceId === PRIMARY_DEVICE_ID;
  }

  fingerprint() {
    return this.publicKeys.fingerprint();
  }

  /** Ed25519 signature of `message` (bytes) by this device's signing key. */
  async sign(message) {
    return nacl.sign.detached(message, this.signSecretKey);
  }

  /** The NaCl Box key shared with the holder of `boxKey` (base64url): nacl.box.before. */
  async boxKeyWith(boxKey) {
    return nacl.box.before(b64urlDecode(boxKey), this.boxSecret);
  }

  /** What a keystore keeps (IndexedDB stores the bytes as they are). */
  toRecord() {
    return { userId: this.userId, deviceId: this.deviceId, signSeed: this.signSeed, boxSecret: this.boxSecret };
  }

  static fromRecord(record) {
    return new Identity(record.userId, new Uint8Array(record.signSeed), new Uint8Array(record.boxSecret), record.deviceId ?? PRIMARY_DEVICE_ID);
  }
}

/** A device id of §8 (1-32 of [a-z0-9_-]); TypeError otherwise. */
export function checkDeviceId(deviceId) {
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new TypeError(`a device id is 1-32 characters of [a-z0-9_-]: ${deviceId}`);
  }
}

/** A short safety number for a user's two public keys: 6 groups of 5 digits. */
export function fingerprint(userId, signKey, boxKey) {
  const digest = sha256(concat(utf8(FINGERPRINT_DOMAIN + userId + '\n'), signKey, boxKey));
  const groups = [];
  for (let i = 0; i < FINGERPRINT_GROUPS; i += 1) {
    let value = 0n;
    for (const byte of digest.subarray(i * 5, (i + 1) * 5)) value = (value << 8n) | BigInt(byte);
    groups.push(String(value % 100000n).padStart(5, '0'));
  }
  return groups.join(' ');
}

/** A safety number as typed by a person (any spacing) in its canonical form. */
export function normalizeFingerprint(text) {
  const digits = String(text).replace(/\D/g, '');
  return (digits.match(/.{1,5}/g) ?? []).join(' ');
}

/** SHA-256 of UTF-8 text (the directory's shard rule uses it too). */
export const sha256Of = (text) => sha256(utf8(text));

// --- connecting (§1) -----------------------------------------------------------------

export function connectMessage(userId, ts, nonce) {
  return utf8(`${CONNECT_SIGNING_PREFIX}\n${userId}\n${ts}\n${nonce}`);
}

/** The v1.2 connect message: bound to the endpoint `aud` and to the device (§1). */
export function boundConnectMessage(userId, deviceId, ts, nonce, aud) {
  return utf8(`${BOUND_CONNECT_SIGNING_PREFIX}\n${userId}\n${deviceId}\n${ts}\n${nonce}\n${aud}`);
}

const DEFAULT_PORTS = { 'ws:': '80', 'wss:': '443' };

/**
 * The endpoint a WebSocket URL names, as `aud` carries it (messenger_protocol.connect's
 * canonical_endpoint): lowercase scheme and host, the port only if not the scheme's
 * default, the path without a trailing slash, no query or fragment.
 */
export function canonicalEndpoint(url) {
  if (typeof url !== 'string' || !url || /\s/.test(url)) throw new TypeError(`not a WebSocket URL: ${url}`);
  const parsed = new URL(url);
  const scheme = parsed.protocol.toLowerCase();
  if (!(scheme in DEFAULT_PORTS) || !parsed.hostname) throw new TypeError(`not a ws:// or wss:// URL with a host: ${url}`);
  if (parsed.username || parsed.password) throw new TypeError(`an endpoint names no user: ${url}`);
  // URL drops the scheme's default port and lowercases the host; IPv6 keeps its brackets.
  const port = parsed.port && parsed.port !== DEFAULT_PORTS[scheme] ? `:${parsed.port}` : '';
  return `${scheme}//${parsed.hostname.toLowerCase()}${port}${parsed.pathname.replace(/\/+$/, '')}`;
}

/**
 * A freshly signed connect query. Device 1's carries its public keys: they register the
 * user on the first connect, are accepted when identical later, and re-register us on a
 * cell that lost the registration (§7), as the Python SDK does; a linked device's does not
 * (its keys are in the signed device list, §8). With `aud` (the endpoint connected to,
 * `canonicalEndpoint`) in the v1.2 form, bound to it: a copy relayed elsewhere is refused.
 */
export async function signedConnectQuery(identity, nowMs, nonce = newConnectNonce(), { aud = null, deviceId = identity.deviceId ?? PRIMARY_DEVICE_ID } = {}) {
  const ts = String(Math.floor(nowMs / 1000));
  const message = aud === null ? connectMessage(identity.userId, ts, nonce) : boundConnectMessage(identity.userId, deviceId, ts, nonce, aud);
  const sig = await identity.sign(message);
  const query = { userId: identity.userId, ts, nonce, sig: b64urlEncode(sig) };
  if (deviceId !== PRIMARY_DEVICE_ID) query.deviceId = deviceId;
  if (aud !== null) query.aud = aud;
  if (deviceId === PRIMARY_DEVICE_ID) {
    query.signKey = identity.publicKeys.signKey;
    query.boxKey = identity.publicKeys.boxKey;
  }
  return query;
}

export const newConnectNonce = () => b64urlEncode(randomBytes(CONNECT_NONCE_BYTES));

/** `url` with the query string appended. */
export function withQuery(url, query) {
  const separator = url.includes('?') ? '&' : '?';
  return url + separator + new URLSearchParams(query).toString();
}

// --- messages (§5) -------------------------------------------------------------------

/** The plaintext of §5, checked to fit in one frame once encrypted. */
export function encodePlaintext(text) {
  const plaintext = utf8(JSON.stringify({ text }));
  const bodyBytes = plaintext.length + BOX_OVERHEAD_BYTES;
  if (bodyBytes > MAX_BODY_BYTES) throw new MessageTooLong(bodyBytes);
  return plaintext;
}

/** The text of a decrypted body; UnreadableMessage if it is not our JSON. */
export function decodePlaintext(plaintext) {
  let document;
  try {
    document = JSON.parse(fromUtf8(plaintext));
  } catch {
    throw new UnreadableMessage('the plaintext is not UTF-8 JSON');
  }
  if (document === null || typeof document !== 'object' || typeof document.text !== 'string') {
    throw new UnreadableMessage('the plaintext has no text');
  }
  return document.text;
}

/** {body, nonce}, base64url: a NaCl Box from us to `recipient` (anything with a
 * `boxKey`: a user's keys, or one of their devices), with a fresh nonce. */
export async function seal(identity, recipient, plaintext, nonce = randomBytes(BOX_NONCE_BYTES)) {
  const box = nacl.box.after(plaintext, nonce, await identity.boxKeyWith(recipient.boxKey));
  return { body: b64urlEncode(box), nonce: b64urlEncode(nonce) };
}

/** Decrypt a Box from the sender whose keys we pinned (Box also proves who sent it): a
 * body (§5), or a message key sealed for this device (§8). */
export async function openSealed(identity, sender, body, nonce) {
  let opened = null;
  try {
    opened = nacl.box.open.after(b64urlDecode(body), b64urlDecode(nonce), await identity.boxKeyWith(sender.boxKey));
  } catch {
    opened = null;
  }
  if (!opened) throw new UnreadableMessage(`does not open with the pinned key of ${sender.userId ?? sender.deviceId}`);
  return opened;
}

/**
 * The sendMessage frame (JSON text) carrying `text` to `recipient`, sealed once. It is kept
 * as this exact text until delivered: a resend is the same frame, byte for byte.
 */
export async function sendMessageFrame(identity, recipient, messageId, text, sentAt, nonce) {
  const { body, nonce: boxNonce } = await seal(identity, recipient, encodePlaintext(text), nonce);
  // The field order of the Python SDK's frame (messenger_protocol.frames.SendMessage).
  const frame = JSON.stringify({
    action: 'sendMessage',
    body,
    messageId,
    to: recipient.userId,
    nonce: boxNonce,
    sentAt,
  });
  if (utf8(frame).length > MAX_FRAME_BYTES) throw new MessageTooLong(b64urlDecode(body).length);
  return frame;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
