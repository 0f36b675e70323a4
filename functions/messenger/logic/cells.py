"""Which cell is a user's home (docs/protocol.md §6), as this cell sees it."""

from __future__ import annotations

from messenger.config import CellSettings


class Cells:
    """This cell's view of the shard map. With no cell settings, every user is at home."""

    def __init__(self, settings: CellSettings | None) -> None:
        self._settings = settings

    @property
    def cell_id(self) -> str | None:
        return self._settings.cell_id if self._settings else None

    def home_of(self, user_id: str) -> str | None:
        """The user's home cell; None in a single-cell deployment."""
        return self._settings.shard_map.home_of(user_id) if self._settings else None

    def is_home(self, user_id: str) -> bool:
        """Whether this cell is the user's home."""
        return self._settings is None or self.home_of(user_id) == self._settings.cell_id

    def by_home(self, user_ids: list[str]) -> dict[str | None, list[str]]:
        """Users grouped by home cell, in their order; this cell's under None."""
        groups: dict[str | None, list[str]] = {}
        for user_id in user_ids:
            home = None if self.is_home(user_id) else self.home_of(user_id)
            groups.setdefault(home, []).append(user_id)
        return groups
