"""The rules of docs/protocol.md §7 a client decides with, in one place.

Every message we sent keeps, until its `delivered` receipt, where the server stored it
(`StoredAt`: the `epoch` of its `ack`, the cell that stored it, the recipient's home by
our directory then, and the directory version we knew); every `seen` mark we sent keeps
the same of its `seenStored`. Both go again (the same frame) when:

1. a `syncDone` names an epoch other than the last one we saw (the inbox sees it);
2. the directory moved our home cell (`HomeCell`'s `on_home_moved`);
3. a newer directory shows, for the cell that stored it, an epoch other than its
   answer's, or another cell as its recipient's home (`moved_since`).

`EpochChanges` remembers (in the history) when each cell's epoch last changed as we saw
it, so that a `sendMessage` refused UNKNOWN_RECIPIENT within an hour of its recipient's
cell changing epoch is kept and sent again (`keeps_unknown_recipient`).
"""

from __future__ import annotations

import json
import logging

from messenger_client.store import HistoryStore, StoredAt
from messenger_protocol.cells import Directory
from messenger_protocol.client_rules import UNKNOWN_RECIPIENT_WINDOW_SECONDS

log = logging.getLogger(__name__)

# The history's meta key for each cell's epoch as we last saw it, and since when (ms).
CELL_EPOCHS_KEY = "cell_epochs"
# The cell id under which a client without a directory (one server) keeps its cell.
SINGLE_CELL = "-"


def moved_since(
    stored: StoredAt, directory: Directory, recipient: str, moved: frozenset[str] = frozenset()
) -> bool:
    """Rule 3: `directory`, newer than the one known when the frame was stored, shows for
    the cell that stored it another epoch, or another cell as the recipient's home.

    `moved`: the cells whose url this directory changed (`HomeCell`'s `on_cells_moved`),
    which count as a new epoch: a document without epochs (v1.1) says no more, and a
    frame stored before we knew any directory (no cell kept) is judged by its
    recipient's cell."""
    if (stored.cell or directory.home_of(recipient)) in moved:
        return True
    if stored.cell is None:
        return False  # stored without a directory: rules 1 and 2 cover it
    if stored.directory_version is not None and directory.version <= stored.directory_version:
        return False  # no news: a stale copy would otherwise resend on every look
    if directory.home_of(recipient) != stored.cell:
        return True
    epoch = directory.epoch_of(stored.cell)
    return epoch is not None and epoch != stored.epoch


class EpochChanges:
    """When each cell's epoch last changed, as this client saw it (kept in the history)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store
        self._cells: dict[str, list[object]] = self._load()

    def note(self, cell: str, epoch: str, now_ms: int) -> bool:
        """We saw `cell` at `epoch`; True if that is a change from what we saw before."""
        known = self._cells.get(cell)
        if known is not None and known[0] == epoch:
            return False
        # The first sight of a cell is no change: we do not know when it took its epoch.
        self._cells[cell] = [epoch, now_ms if known is not None else 0]
        self._store.set_meta(CELL_EPOCHS_KEY, json.dumps(self._cells))
        return known is not None

    def note_directory(self, directory: Directory, now_ms: int) -> None:
        """Each cell of a directory just read; a switch changes its epoch and its url (a
        document without epochs, v1.1, shows the url alone)."""
        for cell, url in directory.urls.items():
            self.note(_seen_in_directory(cell), f"{url} {directory.epoch_of(cell) or ''}", now_ms)

    def changed_within(self, cell: str, seconds: float, now_ms: int) -> bool:
        """Whether `cell`'s epoch changed within `seconds`, as its `syncDone` (for our own
        home, `note`) or the directory (`note_directory`) showed it."""
        changes = [self._cells.get(key) for key in (cell, _seen_in_directory(cell))]
        return any(
            known is not None
            and isinstance(known[1], int)
            and 0 < known[1] >= now_ms - seconds * 1000
            for known in changes
        )

    def keeps_unknown_recipient(self, cell: str, now_ms: int) -> bool:
        """§7: UNKNOWN_RECIPIENT within an hour after the recipient's cell changed epoch
        may be a registration the failover lost: keep the message and try again."""
        return self.changed_within(cell, UNKNOWN_RECIPIENT_WINDOW_SECONDS, now_ms)

    def _load(self) -> dict[str, list[object]]:
        text = self._store.get_meta(CELL_EPOCHS_KEY)
        if text is None:
            return {}
        try:
            loaded = json.loads(text)
        except ValueError:
            log.warning("forgot the remembered cell epochs, which no longer read")
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {
            cell: value
            for cell, value in loaded.items()
            if isinstance(value, list) and len(value) == 2
        }


def _seen_in_directory(cell: str) -> str:
    """The key of what the directory shows of `cell` (its url and epoch), apart from what
    `syncDone` says of our home (its epoch alone)."""
    return f"directory:{cell}"
