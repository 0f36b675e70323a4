// Directory documents for tests, signed as the deployment's publisher signs them (§6), and
// a fake `fetch` serving them: the stable URL, the numbered copies and the key.

import nacl from 'tweetnacl';

import { checkDirectory, directoryDigest } from '../../sdk/directory.js';
import { b64urlEncode } from '../../sdk/encoding.js';

// A directory on this machine (http, loopback): its cells may be ws:// (the fake servers).
export const LOCAL_DIRECTORY_URL = 'http://127.0.0.1:9/directory.json';

const seeded = (first) => nacl.sign.keyPair.fromSeed(Uint8Array.from({ length: 32 }, (_, i) => (first + i) % 256));
export const DIRECTORY_KEYS = seeded(7);
export const DIRECTORY_KEY = b64urlEncode(DIRECTORY_KEYS.publicKey);
export const OTHER_KEYS = seeded(8);

/** `document` signed by `keys` (default: the deployment's). */
export function signed(document, keys = DIRECTORY_KEYS) {
  const copy = structuredClone(document);
  delete copy.sig;
  return { ...copy, sig: b64urlEncode(nacl.sign.detached(directoryDigest(copy), keys.secretKey)) };
}

/** A signed directory: `cells` {id: url}, each cell at epoch `epochs[id]` (default e#1). */
export function directoryOf(cells, shardMap, version = 1, { epochs = {}, shards = 4096, keys = DIRECTORY_KEYS } = {}) {
  const entries = Object.entries(cells).map(([cell, url]) => [cell, { url, epoch: epochs[cell] ?? 'e#1' }]);
  return signed(checkDirectory({ version, shards, cells: Object.fromEntries(entries), shardMap }), keys);
}

/** A fake fetch: `publish(document)` makes it the current one (and its numbered copy);
 * `fetches` lists every URL asked for. */
export function directoryHost(first, { url = LOCAL_DIRECTORY_URL, key = DIRECTORY_KEY } = {}) {
  const copies = new Map();
  const host = {
    current: null,
    fetches: [],
    publish(document) {
      host.current = document;
      copies.set(document.version, document);
    },
    async fetch(asked) {
      host.fetches.push(asked);
      const base = url.slice(0, -'directory.json'.length);
      const number = asked.startsWith(`${base}directory/`) ? Number(asked.slice(base.length + 10, -5)) : null;
      const body = asked === url ? host.current : number !== null ? copies.get(number) : asked === `${base}directory.key` ? key : undefined;
      if (body === undefined) return { ok: false, status: 404 };
      return { ok: true, status: 200, json: async () => structuredClone(body), text: async () => String(body) };
    },
  };
  if (first) host.publish(first);
  host.fetch = host.fetch.bind(host);
  return host;
}
