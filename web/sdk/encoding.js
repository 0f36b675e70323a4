// base64url without padding (RFC 4648 §5), UTF-8, and the id rules of docs/protocol.md §1-§3.

import { CONNECT_NONCE_PATTERN, MESSAGE_ID_PATTERN, USER_ID_PATTERN } from './limits.generated.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const VALUES = new Map([...ALPHABET].map((char, index) => [char, index]));

export function b64urlEncode(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j += 1) text += ALPHABET[(chunk >> (18 - 6 * j)) & 63];
  }
  return text;
}

/** Decode base64url without padding; throws a TypeError on anything else. */
export function b64urlDecode(text) {
  if (typeof text !== 'string' || text.length % 4 === 1) {
    throw new TypeError('not base64url without padding');
  }
  const bytes = new Uint8Array(Math.floor((text.length * 3) / 4));
  let buffer = 0;
  let bits = 0;
  let out = 0;
  for (const char of text) {
    const value = VALUES.get(char);
    if (value === undefined) throw new TypeError('not base64url without padding');
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[out] = (buffer >> bits) & 255;
      out += 1;
    }
  }
  return bytes;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (text) => encoder.encode(text);
/** UTF-8 bytes to text; throws a TypeError if they are not UTF-8. */
export const fromUtf8 = (bytes) => decoder.decode(bytes);
export const utf8Length = (text) => encoder.encode(text).length;

export const isUserId = (value) => typeof value === 'string' && USER_ID_PATTERN.test(value);
export const isMessageId = (value) => typeof value === 'string' && MESSAGE_ID_PATTERN.test(value);
export const isConnectNonce = (value) =>
  typeof value === 'string' && CONNECT_NONCE_PATTERN.test(value);

export const USER_ID_RULE =
  'a user id: 1-64 characters of a-z 0-9 _ . -, the first a letter or a digit';

/** A user id given to the SDK by the app: a TypeError if it is not one. */
export function checkUserId(userId) {
  if (!isUserId(userId)) throw new TypeError(`${userId} is not ${USER_ID_RULE}`);
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID: 48 bits of milliseconds and 80 random bits, 26 characters that sort by time. */
export function ulid(now = Date.now(), random = randomBytes) {
  let time = '';
  let ms = now;
  for (let i = 0; i < 10; i += 1) {
    time = CROCKFORD[ms % 32] + time;
    ms = Math.floor(ms / 32);
  }
  const noise = random(10);
  let rest = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of noise) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      rest += CROCKFORD[(buffer >> bits) & 31];
    }
  }
  return time + rest;
}

export function randomBytes(count) {
  return globalThis.crypto.getRandomValues(new Uint8Array(count));
}
