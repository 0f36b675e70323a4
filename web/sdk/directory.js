// Cells and the directory (docs/protocol.md §6): which cell is a user's home, and its URL.
//
// Beyond §7: a failover of a peer's cell can lose a message we sent to one of its users
// (stored and acked in the lost primary, never replicated) with nothing else to tell us.
// The client reads the directory again while connected (`lookAgain`: on every connection
// and every `directoryInterval`; a failed read is ignored until the next), and whenever a
// newer version changes some cell's `url` (`movedCells`), `onCellsMoved(document, cells)`
// is called: the client sends again what was not delivered to those cells' users.

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

/** The directory at a URL, fetched when first needed and again when asked to (a refused
 * handshake, §6), or to look for cells that moved (`lookAgain`). */
export class Directory {
  constructor(url, fetchFn = globalThis.fetch.bind(globalThis), { onCellsMoved = async () => {} } = {}) {
    this.url = directoryUrlOf(url);
    this.fetch = fetchFn;
    this.onCellsMoved = onCellsMoved;
    this.document = null;
    this.readSinceLook = false; // read (to connect) since the last `lookAgain`
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
    this.readSinceLook = true;
    const previous = this.document;
    // A stale copy (a cache, a lagging replica) never replaces a newer one.
    if (!previous || document.version >= previous.version) this.document = document;
    const moved = previous ? movedCells(previous, document) : new Set();
    if (moved.size) await this.onCellsMoved(document, moved);
    return this.document;
  }

  /** Read the directory again while connected, to see peers' cells move; a failed read is
   * ignored (the next look tries again). A read made since the last look (to connect:
   * the first attempt, or after a refusal) stands for this one. */
  /** A frame named the directory's current version (`dv`, e.g. in `pong`): read the
   * directory now if ours is older, rather than at the next look. */
  async learnVersion(version) {
    if (this.document && version <= this.document.version) return;
    await this.refresh();
  }

  async lookAgain() {
    if (this.readSinceLook) {
      this.readSinceLook = false;
      return;
    }
    try {
      await this.refresh();
    } catch (error) {
      if (!(error instanceof NotConnected || error instanceof TypeError || error instanceof SyntaxError)) throw error;
    }
    this.readSinceLook = false;
  }

  /** {cell, url} of the user's home cell, fetching the directory first if needed. */
  async home(userId, { refresh = false } = {}) {
    if (refresh || !this.document) await this.refresh();
    const cell = homeCellOf(this.document, userId);
    return { cell, url: this.document.cells[cell].url, version: this.document.version };
  }
}
