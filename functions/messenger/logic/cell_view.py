"""Whether this side of the cell serves (docs/protocol.md §7 Fencing).

At any time exactly one side of a cell is active. This side reads which one from its own
replica (dal/cell_state.py) at most once per CACHE_SECONDS per container, and answers:

- ACTIVE: it is the active side and its writes have begun;
- PROMOTING: a switch made it the active side, but the demoted side's containers may still
  hold a view that says otherwise, for up to CACHE_SECONDS: it takes writes from the
  switch's `activeFrom` (the switch time plus CACHE_SECONDS plus a margin), so that the two
  sides never take writes at once, with no one sleeping for it;
- FENCED: the other side is active (this primary was demoted, or this standby was never
  promoted): it refuses handshakes (403), answers frames `MOVED` and closes them, and
  refuses Relay calls.

A FENCED side refuses for good (the client goes to the directory); a PROMOTING one asks
to be tried again: its authorizer fails (API Gateway answers 500, which clients retry),
a frame is answered INTERNAL (nothing written), a Relay call MOVED (the caller tries the
other side, then answers its client INTERNAL). It lasts a few seconds.
"""

from __future__ import annotations

from enum import StrEnum

from messenger.config import PRIMARY_SIDE
from messenger.dal.cell_state import ActiveSide, CellState
from messenger.errors import SideFenced, SidePromoting
from messenger.logic.clock import Clock

# Short: the demoted side stops within this of a switch, and the promoted side waits this
# (plus SWITCH_MARGIN_SECONDS) before it takes writes.
CACHE_SECONDS = 2.0
# For the clocks of two regions' containers and the time a read takes.
SWITCH_MARGIN_SECONDS = 1.0


def promotion_delay_ms() -> int:
    """How long after a switch the promoted side waits before it takes writes: until every
    container of the demoted side must have read the switch."""
    return int((CACHE_SECONDS + SWITCH_MARGIN_SECONDS) * 1000)


class SideStatus(StrEnum):
    ACTIVE = "active"
    PROMOTING = "promoting"
    FENCED = "fenced"


def status_of(own_side: str, state: ActiveSide, now_ms: int) -> SideStatus:
    """What a side is, given the cell's state (before any switch, the primary is active)."""
    active = state.side or PRIMARY_SIDE
    if active != own_side:
        return SideStatus.FENCED
    return SideStatus.PROMOTING if now_ms < state.active_from_ms else SideStatus.ACTIVE


class CellView:
    """This container's view of its side of the cell, refreshed every CACHE_SECONDS."""

    def __init__(
        self,
        states: CellState,
        own_side: str,
        clock: Clock,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._states = states
        self.own_side = own_side
        self._clock = clock
        self._cache_ms = int(cache_seconds * 1000)
        self._state = ActiveSide(None, 0, 0)
        self._read_at_ms: int | None = None

    def state(self) -> ActiveSide:
        now_ms = self._clock.now_ms()
        if self._read_at_ms is None or now_ms - self._read_at_ms >= self._cache_ms:
            self._state = self._states.read()
            self._read_at_ms = now_ms
        return self._state

    def status(self) -> SideStatus:
        return status_of(self.own_side, self.state(), self._clock.now_ms())

    def serving(self) -> bool:
        """True when this side takes handshakes, frames and Relay calls."""
        return self.status() is SideStatus.ACTIVE

    def admit(self) -> None:
        """Raise SideFenced (FENCED) or SidePromoting (PROMOTING) unless this side serves."""
        status = self.status()
        if status is SideStatus.FENCED:
            raise SideFenced(f"this side ({self.own_side}) of the cell is not active")
        if status is SideStatus.PROMOTING:
            raise SidePromoting(f"this side ({self.own_side}) of the cell takes writes shortly")

    def forget(self) -> None:
        """Read the cell's state again at next use (a side told of a switch at once)."""
        self._read_at_ms = None
