"""Which cell is a user's home (docs/protocol.md §6), as this cell sees it.

Every deployment is a shard map: a single deployment is one cell that owns every shard
and has no peers, so the same code serves one cell and many.
"""

from __future__ import annotations

from collections.abc import Iterable

from messenger.config import CellSettings


class Cells:
    """This cell's view of the shard map."""

    def __init__(self, settings: CellSettings) -> None:
        self._settings = settings
        self._peers = tuple(cell for cell in settings.shard_map.cells() if cell != settings.cell_id)
        self._peer_set = frozenset(self._peers)

    @property
    def cell_id(self) -> str:
        return self._settings.cell_id

    @property
    def peers(self) -> tuple[str, ...]:
        """The other cells of the map, whose Relays this cell may call (none in a single
        cell). Where each one's Relay is, is read from the directory (dal/relay_directory)."""
        return self._peers

    def home_of(self, user_id: str) -> str:
        """The user's home cell."""
        return self._settings.shard_map.home_of(user_id)

    def is_home(self, user_id: str) -> bool:
        """Whether this cell is the user's home."""
        return self.home_of(user_id) == self.cell_id

    def is_peer(self, cell: str) -> bool:
        """Whether `cell` is another cell of the map (one that may call this one's Relay)."""
        return cell in self._peer_set

    def split(self, user_ids: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
        """This cell's users, and the others' grouped by home cell, each in their order."""
        here: list[str] = []
        elsewhere: dict[str, list[str]] = {}
        for user_id in user_ids:
            home = self.home_of(user_id)
            if home == self.cell_id:
                here.append(user_id)
            else:
                elsewhere.setdefault(home, []).append(user_id)
        return here, elsewhere
