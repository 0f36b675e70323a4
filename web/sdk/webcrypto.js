// A device's keys as non-extractable WebCrypto keys (Ed25519, X25519) where the platform has
// them (Chromium, Firefox, Safari, Node): a script on the page can use them while it runs,
// but can never read them out, and IndexedDB stores them as CryptoKey objects, not bytes
// (docs/privacy.md says what that protects and what it does not).
//
// The bytes on the wire are those of tweetnacl and PyNaCl: Ed25519 signatures are
// deterministic, and the NaCl Box key is HSalsa20 of the X25519 shared secret (what
// nacl.box.before computes), so tests/vectors/*.json hold for either Identity.

import nacl from 'tweetnacl';

import { fingerprint, Identity, PeerKeys, checkDeviceId } from './crypto.js';
import { b64urlDecode, b64urlEncode, isUserId, USER_ID_RULE } from './encoding.js';
import { KEY_BYTES, PRIMARY_DEVICE_ID } from './limits.generated.js';

const subtle = () => globalThis.crypto?.subtle;
// HSalsa20's constant ("expand 32-byte k") and the zero input nacl.box.before uses.
const SIGMA = new TextEncoder().encode('expand 32-byte k');
const ZERO_INPUT = new Uint8Array(16);
// The PKCS#8 wrapping of a 32-byte Ed25519 / X25519 private key (RFC 8410): to import a
// known seed (test vectors, a key moved from an older profile) as a non-extractable key.
const PKCS8_PREFIX = {
  Ed25519: Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]),
  X25519: Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]),
};

let supportChecked = null;

/** Whether this platform makes and uses non-extractable Ed25519 and X25519 keys. */
export function webCryptoKeysSupported() {
  supportChecked ??= (async () => {
    if (!subtle()) return false;
    try {
      const signing = await subtle().generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      await subtle().sign('Ed25519', signing.privateKey, new Uint8Array(1));
      const box = await subtle().generateKey({ name: 'X25519' }, false, ['deriveBits']);
      await subtle().deriveBits({ name: 'X25519', public: box.publicKey }, box.privateKey, 256);
      return true;
    } catch {
      return false;
    }
  })();
  return supportChecked;
}

/** The NaCl Box key from an X25519 shared secret: nacl.box.before's HSalsa20 step. */
export function boxKeyFromShared(shared) {
  const key = new Uint8Array(32);
  nacl.lowlevel.crypto_core_hsalsa20(key, ZERO_INPUT, shared, SIGMA);
  return key;
}

/** Our identity with non-extractable private keys (CryptoKey): as Identity, async only. */
export class WebCryptoIdentity {
  constructor(userId, deviceId, signPrivate, boxPrivate, signKey, boxKey) {
    if (!isUserId(userId)) throw new TypeError(`${userId} is not ${USER_ID_RULE}`);
    checkDeviceId(deviceId);
    this.userId = userId;
    this.deviceId = deviceId;
    Object.defineProperties(this, {
      signPrivate: { value: signPrivate },
      boxPrivate: { value: boxPrivate },
      sharedKeys: { value: new Map() },
    });
    this.publicKeys = new PeerKeys(userId, signKey, boxKey);
    Object.freeze(this);
  }

  /** New keys, made by the platform and never extractable. */
  static async generate(userId, deviceId = PRIMARY_DEVICE_ID) {
    const signing = await subtle().generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const box = await subtle().generateKey({ name: 'X25519' }, false, ['deriveBits']);
    return WebCryptoIdentity.#of(userId, deviceId, signing, box);
  }

  /** Known private keys (seeds) imported as non-extractable keys. */
  static async fromSeeds(userId, signSeed, boxSecret, deviceId = PRIMARY_DEVICE_ID) {
    if (signSeed.length !== KEY_BYTES || boxSecret.length !== KEY_BYTES) throw new TypeError(`private keys are ${KEY_BYTES} bytes`);
    const known = new Identity(userId, signSeed, boxSecret, deviceId); // the public halves
    const signPrivate = await importPrivate('Ed25519', signSeed, ['sign']);
    const boxPrivate = await importPrivate('X25519', boxSecret, ['deriveBits']);
    const { signKey, boxKey } = known.publicKeys;
    return new WebCryptoIdentity(userId, deviceId, signPrivate, boxPrivate, signKey, boxKey);
  }

  static async #of(userId, deviceId, signing, box) {
    const signKey = b64urlEncode(new Uint8Array(await subtle().exportKey('raw', signing.publicKey)));
    const boxKey = b64urlEncode(new Uint8Array(await subtle().exportKey('raw', box.publicKey)));
    return new WebCryptoIdentity(userId, deviceId, signing.privateKey, box.privateKey, signKey, boxKey);
  }

  get isPrimary() {
    return this.deviceId === PRIMARY_DEVICE_ID;
  }

  fingerprint() {
    return fingerprint(this.userId, b64urlDecode(this.publicKeys.signKey), b64urlDecode(this.publicKeys.boxKey));
  }

  async sign(message) {
    return new Uint8Array(await subtle().sign('Ed25519', this.signPrivate, message));
  }

  /** The Box key shared with `boxKey`: X25519 by the platform, then HSalsa20 (kept). */
  async boxKeyWith(boxKey) {
    if (!this.sharedKeys.has(boxKey)) {
      const peer = await subtle().importKey('raw', b64urlDecode(boxKey), { name: 'X25519' }, true, []);
      const shared = new Uint8Array(await subtle().deriveBits({ name: 'X25519', public: peer }, this.boxPrivate, 256));
      this.sharedKeys.set(boxKey, boxKeyFromShared(shared));
    }
    return this.sharedKeys.get(boxKey);
  }

  /** What IndexedDB keeps: the CryptoKey objects themselves (structured clone), which stay
   * non-extractable there too. */
  toRecord() {
    const { signKey, boxKey } = this.publicKeys;
    return { userId: this.userId, deviceId: this.deviceId, signPrivate: this.signPrivate, boxPrivate: this.boxPrivate, signKey, boxKey };
  }
}

async function importPrivate(name, seed, usages) {
  const pkcs8 = new Uint8Array(PKCS8_PREFIX[name].length + seed.length);
  pkcs8.set(PKCS8_PREFIX[name]);
  pkcs8.set(seed, PKCS8_PREFIX[name].length);
  return subtle().importKey('pkcs8', pkcs8, { name }, false, usages);
}

/** New keys for a device: non-extractable WebCrypto keys where supported, else tweetnacl. */
export async function generateIdentity(userId, deviceId = PRIMARY_DEVICE_ID) {
  if (await webCryptoKeysSupported()) return WebCryptoIdentity.generate(userId, deviceId);
  return Identity.generate(userId, deviceId);
}

/** The identity a keystore record holds (either kind). */
export function identityFromRecord(record) {
  if (record.signPrivate) {
    return new WebCryptoIdentity(record.userId, record.deviceId ?? PRIMARY_DEVICE_ID, record.signPrivate, record.boxPrivate, record.signKey, record.boxKey);
  }
  return Identity.fromRecord(record);
}
