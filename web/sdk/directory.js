// Cells and the directory (docs/protocol.md §6): which cell is a user's home, and its URL,
// as client/messenger_client/directory.py does for the Python SDK.
//
// The directory is trusted only as far as its signature: a document is accepted only if
// it verifies against the deployment's directory key (the app's config; else the one the
// history kept; else, for a directory on this machine, the one it serves at
// /directory.key, then kept), its version is not lower than the highest accepted, and each
// cell URL is `wss://` (or `ws://` when the directory itself is http on loopback).
// Anything else is refused and the client keeps what it had: a spoofed directory, however
// high its version, never sticks. Only an accepted document is kept in the history (its
// version, cells and epochs), so a restart connects at once and a rolled-back copy is
// refused across restarts too.
//
// It is fetched only when §6 says, never on a timer: when the client starts without one;
// after a failed or refused connect (client.js asks with `refresh`); and when a frame's
// `dv` is above our version (`learnVersion`): then the numbered copy
// `directory/N.json`, after a random delay of up to `jitter` ms unless it is needed at
// once. Whenever a newer version changes some cell's `url` (`movedCells`),
// `onCellsMoved(document, cells)` is called: the client sends again what was not
// delivered to those cells' users (beyond §7: a peer's cell failed over).

import nacl from 'tweetnacl';
import { sha512 } from '@noble/hashes/sha2.js';

import { NotConnected } from './errors.js';
import { sha256Of } from './crypto.js';
import { b64urlDecode, utf8 } from './encoding.js';
import { CELL_ID_PATTERN, DIRECTORY_FETCH_JITTER_SECONDS, DIRECTORY_SIGNING_PREFIX, EPOCH_PATTERN, KEY_BYTES, SIGNATURE_BYTES } from './limits.generated.js';
import { sleep } from './util.js';

// The history's meta keys: the last directory accepted (with the URL it came from) and the
// directory's public key.
export const DIRECTORY_META = 'directory';
export const DIRECTORY_KEY_META = 'directoryKey';
const DIRECTORY_NAME = 'directory.json';
const DIRECTORY_KEY_NAME = 'directory.key';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** shard(userId): the first 4 bytes of SHA-256 of the UTF-8 user id, big-endian, mod shards. */
export function shardOf(userId, shards) {
  const digest = sha256Of(userId);
  const first = ((digest[0] << 24) >>> 0) + (digest[1] << 16) + (digest[2] << 8) + digest[3];
  return first % shards;
}

/**
 * Checks a directory document as messenger_protocol.cells does; returns it, or throws a
 * TypeError saying what is wrong. (Whether it may be trusted is `Directory.check`'s.)
 */
export function checkDirectory(document) {
  const { version, shards, cells, shardMap, sig } = document ?? {};
  if (!Number.isInteger(version) || version < 0 || !Number.isInteger(shards) || shards < 1) {
    throw new TypeError('a directory has an integer version and shards');
  }
  if (!cells || typeof cells !== 'object' || !Array.isArray(shardMap)) {
    throw new TypeError('a directory has cells and a shardMap');
  }
  for (const [cell, entry] of Object.entries(cells)) {
    const url = entry?.url ?? '';
    if (!CELL_ID_PATTERN.test(cell) || !/^wss?:\/\/\S+$/.test(url)) {
      throw new TypeError(`cell ${cell} needs an id and a ws:// or wss:// url`);
    }
    if (entry.epoch !== undefined && !(typeof entry.epoch === 'string' && EPOCH_PATTERN.test(entry.epoch))) {
      throw new TypeError(`the epoch of cell ${cell} is not 1-64 characters of A-Z a-z 0-9 _ . : # -`);
    }
  }
  // In ascending order, as listed: the signature covers the ranges in the document's order.
  let next = 0;
  for (const range of shardMap) {
    const [first, last, cell] = Array.isArray(range) ? range : [];
    if (first !== next || !Number.isInteger(last) || last < first || !Object.hasOwn(cells, cell)) {
      throw new TypeError('the shardMap must cover 0..shards-1 in ascending order, with no gap and no overlap, in known cells');
    }
    next = last + 1;
  }
  if (next !== shards) throw new TypeError('the shardMap must cover 0..shards-1');
  if (sig !== undefined && typeof sig !== 'string') throw new TypeError('sig must be a string');
  return document;
}

/** What the directory key signs the digest of (§6): the prefix, version and shard count,
 * one "cellId url epoch" line per cell in ascending byte order of the ids (c10 before
 * c2), one "lo hi cellId" line per shardMap range in order. Null when a cell has no
 * epoch (a signed directory names each one). */
export function directorySigningText(document) {
  const cells = Object.keys(document.cells).sort(byBytes);
  if (cells.some((cell) => typeof document.cells[cell].epoch !== 'string')) return null;
  const lines = [DIRECTORY_SIGNING_PREFIX, String(document.version), String(document.shards)];
  for (const cell of cells) lines.push(`${cell} ${document.cells[cell].url} ${document.cells[cell].epoch}`);
  for (const [first, last, cell] of document.shardMap) lines.push(`${first} ${last} ${cell}`);
  return `${lines.join('\n')}\n`;
}

/** The 64-byte SHA-512 digest of the signing text: what the directory key signs (null
 * without every cell's epoch). */
export function directoryDigest(document) {
  const text = directorySigningText(document);
  return text === null ? null : sha512(utf8(text));
}

/** Whether the document's `sig` verifies against `publicKey` (base64url, 32 bytes).
 * Unsigned, malformed, or without every cell's epoch: false. */
export function directoryVerifies(document, publicKey) {
  try {
    const digest = directoryDigest(document);
    const key = b64urlDecode(publicKey);
    const sig = b64urlDecode(document.sig);
    if (!digest || key.length !== KEY_BYTES || sig.length !== SIGNATURE_BYTES) return false;
    return nacl.sign.detached.verify(digest, sig, key);
  } catch {
    return false;
  }
}

/** A directory public key: 32 bytes, base64url. */
export function isDirectoryKey(value) {
  try {
    return b64urlDecode(value).length === KEY_BYTES;
  } catch {
    return false;
  }
}

/** Where version `version` is served forever: `directory.json` replaced by
 * `directory/VERSION.json` (§6). */
export function numberedCopyUrl(directoryUrl, version) {
  const url = new URL(directoryUrl);
  const head = url.pathname.slice(0, url.pathname.lastIndexOf('/') + 1);
  if (url.pathname.slice(head.length) !== DIRECTORY_NAME || !Number.isInteger(version) || version < 0) {
    throw new TypeError(`not a directory URL (${DIRECTORY_NAME}) and version: ${directoryUrl}`);
  }
  url.pathname = `${head}directory/${version}.json`;
  return url.href;
}

/** Whether a URL is on this machine (a `messenger local` directory). */
export function isLoopback(url) {
  try {
    return LOOPBACK_HOSTS.has(new URL(url).hostname);
  } catch {
    return false;
  }
}

/**
 * The directory's absolute URL. A relative one is on the page's own origin (the deployed
 * web app's config.js gives `/directory.json`, served next to the page): resolved here,
 * against the page, so that any `fetch` (a test's, a wrapper's) gets the same URL the
 * browser's would; without a page there is nothing to resolve it against.
 */
export function directoryUrlOf(url, base = globalThis.location?.href) {
  try {
    return new URL(url, base).href;
  } catch {
    throw new TypeError(`the directory's URL ${url} is not absolute and there is no page to resolve it against`);
  }
}

/** The home cell (its id) of a user in a directory document. */
export function homeCellOf(document, userId) {
  const shard = shardOf(userId, document.shards);
  return document.shardMap.find(([first, last]) => first <= shard && shard <= last)[2];
}

/** The cells a newer directory moved (a failover: another `url`); none unless `after`'s
 * version is higher, as every change raises it. */
export function movedCells(before, after) {
  if (after.version <= before.version) return new Set();
  return new Set(
    Object.entries(after.cells)
      .filter(([cell, { url }]) => cell in before.cells && before.cells[cell].url !== url)
      .map(([cell]) => cell),
  );
}

/** A directory document that is not to be trusted: badly signed, rolled back, or naming a
 * cell URL a client must not connect to. */
export class RefusedDirectory extends Error {
  constructor(message) {
    super(message);
    this.name = 'RefusedDirectory';
  }
}

/** The directory at a URL, verified, kept in the history, and fetched only when §6 says. */
export class Directory {
  /**
   * @param {string} url the directory's URL (relative: on the page's origin)
   * @param {object} [options]
   * @param {typeof fetch} [options.fetch]
   * @param {string} [options.key] the deployment's directory public key (base64url)
   * @param {History} [options.history] where the accepted directory and the key are kept
   * @param {(document, cells: Set<string>) => Promise<void>} [options.onCellsMoved]
   * @param {number} [options.jitter] the most to wait (ms) before fetching a newer `dv`
   * @param {(ms: number) => Promise<void>} [options.wait] how to wait (tests)
   * @param {() => number} [options.random]
   */
  constructor(url, { fetch = globalThis.fetch?.bind(globalThis), key = null, history = null, onCellsMoved = async () => {}, jitter = DIRECTORY_FETCH_JITTER_SECONDS * 1000, wait = sleep, random = Math.random, log = console } = {}) {
    if (key !== null && key !== undefined && !isDirectoryKey(key)) throw new TypeError('a directory key is 32 bytes in base64url');
    this.url = directoryUrlOf(url);
    this.fetch = fetch;
    this.history = history;
    this.onCellsMoved = onCellsMoved;
    this.jitter = jitter;
    this.wait = wait;
    this.random = random;
    this.log = log;
    this.givenKey = key ?? null;
    this.key = key ?? history?.getMeta(DIRECTORY_KEY_META) ?? null;
    this.document = null;
    this.loaded = false;
    this.wantedVersion = 0; // the highest `dv` a numbered copy is on its way for
  }

  /** The key (given: kept; none: a directory on this machine serves it), then the
   * directory the history kept, if it came from this URL and verifies. */
  async #ready() {
    if (this.givenKey && this.history?.getMeta(DIRECTORY_KEY_META) !== this.givenKey) {
      await this.history.setMeta(DIRECTORY_KEY_META, this.givenKey);
    }
    if (!this.key && isLoopback(this.url) && this.url.endsWith(`/${DIRECTORY_NAME}`)) {
      this.key = await this.#fetchKey();
      await this.history?.setMeta(DIRECTORY_KEY_META, this.key);
    }
    if (this.loaded) return;
    this.loaded = true;
    const kept = this.history?.getMeta(DIRECTORY_META);
    if (!kept || kept.url !== this.url) return;
    try {
      this.check(checkDirectory(kept.document));
      this.document = kept.document;
    } catch (error) {
      this.log.warn?.(`forgot a kept directory: ${error.message}`);
    }
  }

  async #fetchKey() {
    const url = this.url.slice(0, -DIRECTORY_NAME.length) + DIRECTORY_KEY_NAME;
    const key = (await (await this.#get(url)).text()).trim();
    if (!isDirectoryKey(key)) throw new NotConnected(`${url} is not a directory key`);
    return key;
  }

  async #get(url) {
    let response;
    try {
      response = await this.fetch(url, { cache: 'no-store' });
    } catch {
      throw new NotConnected('the directory cannot be reached');
    }
    if (!response.ok) throw new NotConnected(`the directory answered HTTP ${response.status}`);
    return response;
  }

  async #fetchDocument(url) {
    const response = await this.#get(url);
    try {
      return checkDirectory(await response.json());
    } catch (error) {
      throw new NotConnected(`the directory ${url} is not a directory: ${error.message}`);
    }
  }

  /** RefusedDirectory unless `document` may replace ours (§6). */
  check(document) {
    if (!this.key) throw new RefusedDirectory('no directory key: give it (the app config\'s directoryKey) with the directory\'s URL');
    if (!directoryVerifies(document, this.key)) throw new RefusedDirectory(`version ${document.version} is not signed by our key`);
    if (this.document && document.version < this.document.version) {
      throw new RefusedDirectory(`version ${document.version} is older than ours (${this.document.version})`);
    }
    const local = this.url.startsWith('http://') && isLoopback(this.url);
    for (const [cell, { url }] of Object.entries(document.cells)) {
      if (!(url.startsWith('wss://') || (local && url.startsWith('ws://')))) {
        throw new RefusedDirectory(`cell ${cell}'s URL is not ${local ? 'ws:// or wss://' : 'wss://'}`);
      }
    }
  }

  /** Verify and take `document`, keep it in the history, and tell of cells it moved. */
  async #accept(document) {
    this.check(document);
    const previous = this.document;
    this.document = document;
    await this.history?.setMeta(DIRECTORY_META, { url: this.url, document });
    const moved = previous ? movedCells(previous, document) : new Set();
    if (moved.size) await this.onCellsMoved(document, moved);
  }

  /** Fetch the directory at its stable URL and take it if it verifies; a refused one is
   * logged and we keep ours (NotConnected if we have none). Returns the document held. */
  async refresh() {
    await this.#ready();
    const document = await this.#fetchDocument(this.url);
    try {
      await this.#accept(document);
    } catch (error) {
      if (!(error instanceof RefusedDirectory)) throw error;
      this.log.warn?.(`refused the directory at ${this.url}: ${error.message}`);
      if (!this.document) throw new NotConnected(`the directory ${this.url}: ${error.message}`);
    }
    return this.document;
  }

  /** A frame named the directory's current version (`dv`: `ack`, `syncDone`, `pong`): if
   * it is above ours, fetch that version's numbered copy after a random delay of up to
   * `jitter` (none `atOnce`: the client needs it to decide now), once per version; a copy
   * that cannot be had, or is refused, waits for the next event. */
  async learnVersion(version, { atOnce = false } = {}) {
    await this.#ready();
    if (!this.document || version <= this.document.version) return;
    if (!atOnce) {
      if (version <= this.wantedVersion) return; // already on its way
      this.wantedVersion = version;
      await this.wait(this.random() * this.jitter);
      if (this.document && version <= this.document.version) return; // a fetch meanwhile brought it
    }
    this.wantedVersion = Math.max(this.wantedVersion, version);
    try {
      await this.#accept(await this.#fetchDocument(numberedCopyUrl(this.url, version)));
    } catch (error) {
      if (!(error instanceof NotConnected || error instanceof RefusedDirectory || error instanceof TypeError)) throw error;
      this.log.warn?.(`the directory version ${version} was not taken: ${error.message}`);
    }
  }

  /** {cell, url, version} of the user's home cell: the directory held (the kept one
   * first: offline first), fetched if there is none or `refresh` (after a failed or
   * refused connect; a failed fetch then keeps what we had). */
  async home(userId, { refresh = false } = {}) {
    await this.#ready();
    if (!this.document) {
      await this.refresh();
    } else if (refresh) {
      try {
        await this.refresh();
      } catch (error) {
        if (!(error instanceof NotConnected)) throw error;
        this.log.info?.(`keeping directory version ${this.document.version}: ${error.message}`);
      }
    }
    const cell = homeCellOf(this.document, userId);
    return { cell, url: this.document.cells[cell].url, version: this.document.version };
  }
}

function byBytes(a, b) {
  const [x, y] = [utf8(a), utf8(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
