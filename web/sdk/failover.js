// The rules of docs/protocol.md §7 a client decides with, in one place, as
// client/messenger_client/failover.py does for the Python SDK.
//
// Every message we sent keeps, until its `delivered` receipt, where the server stored it
// (`stored`: {epoch, cell, directoryVersion}: the `epoch` of its `ack`, the cell that
// stored it, the recipient's home by our directory then, and the directory version we
// knew); every `seen` mark we sent keeps the same of its `seenStored`. Both go again (the
// same frame) when:
//
// 1. a `syncDone` names an epoch other than the last one we saw (inbox.js);
// 2. the directory moved our home cell (client.js, #signedUrl);
// 3. a newer directory shows, for the cell that stored it, an epoch other than its
//    answer's, or another cell as its recipient's home (`movedSince`).
//
// `EpochChanges` remembers (in the history) when each cell's epoch last changed as we saw
// it, so that a `sendMessage` refused UNKNOWN_RECIPIENT within an hour of its recipient's
// cell changing epoch is kept and sent again.

import { UNKNOWN_RECIPIENT_WINDOW_SECONDS } from './client-rules.generated.js';
import { homeCellOf } from './directory.js';

// The history's meta key for each cell's epoch as we last saw it, and since when (ms).
const CELL_EPOCHS_KEY = 'cellEpochs';
// The cell id under which a client without a directory (one server) keeps its cell.
export const SINGLE_CELL = '-';

/** Where an answer stored a frame: {epoch, cell, directoryVersion} (absent: null). */
export function storedAt(epoch, cell, directoryVersion) {
  return {
    epoch: typeof epoch === 'string' ? epoch : null,
    cell: typeof cell === 'string' ? cell : null,
    directoryVersion: Number.isInteger(directoryVersion) ? directoryVersion : null,
  };
}

/** Rule 3: `document`, newer than the one known when the frame was stored, shows for the
 * cell that stored it another epoch, or another cell as the recipient's home. `moved`:
 * the cells whose url it changed, which count as a new epoch (a document without epochs
 * says no more; a frame stored before we knew any directory is judged by its
 * recipient's cell). */
export function movedSince(stored, document, recipient, moved = new Set()) {
  const home = homeCellOf(document, recipient);
  if (moved.has(stored?.cell ?? home)) return true;
  if (!stored?.cell) return false; // stored without a directory: rules 1 and 2 cover it
  if (stored.directoryVersion !== null && document.version <= stored.directoryVersion) return false;
  if (home !== stored.cell) return true;
  const epoch = document.cells[stored.cell]?.epoch;
  return typeof epoch === 'string' && epoch !== stored.epoch;
}

/** When each cell's epoch last changed, as this client saw it (kept in the history). */
export class EpochChanges {
  constructor(history) {
    this.history = history;
    const kept = history.getMeta(CELL_EPOCHS_KEY);
    this.cells = kept && typeof kept === 'object' ? { ...kept } : {};
  }

  /** We saw `cell` at `epoch`; true if that is a change from what we saw before. */
  async note(cell, epoch, nowMs) {
    const known = this.cells[cell];
    if (known && known[0] === epoch) return false;
    // The first sight of a cell is no change: we do not know when it took its epoch.
    this.cells[cell] = [epoch, known ? nowMs : 0];
    await this.history.setMeta(CELL_EPOCHS_KEY, { ...this.cells });
    return Boolean(known);
  }

  /** Each cell of a directory just read: a switch changes its epoch and its url. */
  async noteDirectory(document, nowMs) {
    for (const [cell, entry] of Object.entries(document.cells)) {
      await this.note(seenInDirectory(cell), `${entry.url} ${entry.epoch ?? ''}`, nowMs);
    }
  }

  /** Whether `cell`'s epoch changed within `seconds`, as its `syncDone` (our own home) or
   * the directory showed it. */
  changedWithin(cell, seconds, nowMs) {
    return [cell, seenInDirectory(cell)].some((key) => {
      const since = this.cells[key]?.[1];
      return Number.isInteger(since) && since > 0 && since >= nowMs - seconds * 1000;
    });
  }

  /** §7: UNKNOWN_RECIPIENT within an hour after the recipient's cell changed epoch may be
   * a registration the failover lost: keep the message and try again. */
  keepsUnknownRecipient(cell, nowMs) {
    return this.changedWithin(cell, UNKNOWN_RECIPIENT_WINDOW_SECONDS, nowMs);
  }
}

function seenInDirectory(cell) {
  return `directory:${cell}`;
}
