// Cells and the directory (PROTOCOL.md §6): which cell is a user's home, and its URL.

import { NotConnected } from './errors.js';
import { sha256Of } from './crypto.js';

/** shard(userId): the first 4 bytes of SHA-256 of the UTF-8 user id, big-endian, mod shards. */
export function shardOf(userId, shards) {
  const digest = sha256Of(userId);
  const first = ((digest[0] << 24) >>> 0) + (digest[1] << 16) + (digest[2] << 8) + digest[3];
  return first % shards;
}

const CELL_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * Checks a directory document as messenger_protocol.cells does; returns it, or throws a
 * TypeError saying what is wrong.
 */
export function checkDirectory(document) {
  const { version, shards, cells, shardMap } = document ?? {};
  if (!Number.isInteger(version) || version < 0 || !Number.isInteger(shards) || shards < 1) {
    throw new TypeError('a directory has an integer version and shards');
  }
  if (!cells || typeof cells !== 'object' || !Array.isArray(shardMap)) {
    throw new TypeError('a directory has cells and a shardMap');
  }
  for (const [cell, entry] of Object.entries(cells)) {
    if (!CELL_ID.test(cell) || !/^wss?:\/\//.test(entry?.url ?? '')) {
      throw new TypeError(`cell ${cell} needs an id and a ws:// or wss:// url`);
    }
  }
  const ranges = [...shardMap].sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [first, last, cell] of ranges) {
    if (first !== next || last < first || !(cell in cells) || typeof cells[cell]?.url !== 'string') {
      throw new TypeError('the shardMap must cover 0..shards-1 with no gap and no overlap, in known cells');
    }
    next = last + 1;
  }
  if (next !== shards) throw new TypeError('the shardMap must cover 0..shards-1');
  return document;
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

/** The directory at a URL, fetched when first needed and again when asked to (a refused
 * handshake, §6). */
export class Directory {
  constructor(url, fetchFn = globalThis.fetch.bind(globalThis)) {
    this.url = directoryUrlOf(url);
    this.fetch = fetchFn;
    this.document = null;
  }

  async refresh() {
    let response;
    try {
      response = await this.fetch(this.url, { cache: 'no-store' });
    } catch {
      throw new NotConnected('the directory cannot be reached');
    }
    if (!response.ok) throw new NotConnected(`the directory answered HTTP ${response.status}`);
    const document = checkDirectory(await response.json());
    // A stale copy (a cache, a lagging replica) never replaces a newer one.
    if (!this.document || document.version >= this.document.version) this.document = document;
    return this.document;
  }

  /** {cell, url} of the user's home cell, fetching the directory first if needed. */
  async home(userId, { refresh = false } = {}) {
    if (refresh || !this.document) await this.refresh();
    const shard = shardOf(userId, this.document.shards);
    const [, , cell] = this.document.shardMap.find(([first, last]) => first <= shard && shard <= last);
    return { cell, url: this.document.cells[cell].url, version: this.document.version };
  }
}
