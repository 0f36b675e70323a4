"""The cell's epoch (docs/protocol.md §3 `syncDone.epoch`, §7): `"<region>#<generation>"`.

`region` is the function's own (`Settings.cell_epoch`: AWS_REGION, or CELL_EPOCH where
a deployment or the local stack names it), `generation` the number the last failover
switch wrote into this region's replica of the Users table (dal/cell_generation.py,
absent = 0). So the standby's functions name another epoch the moment they serve, and
a failback (every switch adds one) never repeats an earlier epoch. Clients resend what
has no `delivered` receipt when the epoch they see changes.

The generation is read at most once per CACHE_SECONDS per container: a switch shows in
every syncDone within that, and a sync costs one GetItem more only when the cache ran out.
"""

from __future__ import annotations

from messenger.dal.cell_generation import CellGeneration
from messenger.logic.clock import Clock

CACHE_SECONDS = 10
SEPARATOR = "#"


def epoch_name(region: str, generation: int) -> str:
    """The epoch a region of a cell names at a generation: `us-east-1#0`, `local-c0-standby#3`."""
    return f"{region}{SEPARATOR}{generation}"


class CellEpoch:
    """This container's view of the cell's epoch, refreshed every CACHE_SECONDS."""

    def __init__(
        self,
        generations: CellGeneration,
        region: str,
        clock: Clock,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._generations = generations
        self._region = region
        self._clock = clock
        self._cache_ms = int(cache_seconds * 1000)
        self._generation = 0
        self._read_at_ms: int | None = None

    def current(self) -> str:
        now_ms = self._clock.now_ms()
        if self._read_at_ms is None or now_ms - self._read_at_ms >= self._cache_ms:
            self._generation = self._generations.read()
            self._read_at_ms = now_ms
        return epoch_name(self._region, self._generation)
