"""Which cell made a Relay call (docs/protocol.md §6: a cell accepts a call from another
cell only if that cell made it; docs/scale.md "The mesh").

A request claims its caller in `from`; it is believed only if it is signed by a relay key
that the claimed cell published in the directory (dal/relay_directory.py), names this cell
in `to`, and was signed within `RELAY_CALL_WINDOW_MS` of this cell's clock. Any cell of the
deployment may call, whatever shards it owns in this cell's view of the map: a new cell
that owns nothing here yet (the target of a move this cell has not read the publish of),
or this cell itself (a move's step read between two looks at one user's home can make a
cell call its own Relay, which then answers with the view of the moment). The signature
is the proof; the map is not (docs/scale.md "Shard moves"). Then the caller
takes one unit of its own budget (`RELAY_CALLS_PER_CALLER`), so that one sick cell cannot
take this cell's Relay from the others. Anything else is refused before the operation
reads its fields: a refused call writes nothing (the budget is taken last, and only by a
call that proved its caller).
"""

from __future__ import annotations

from messenger.contract import RateLimit
from messenger.dal.rate_limits import RateLimits
from messenger.dal.relay_directory import RelayDirectory
from messenger.errors import BadRequest, RateLimited
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.transport.relay_records import RelayRequest
from messenger_protocol.mesh import RELAY_CALL_WINDOW_MS
from messenger_protocol.signatures import verifies

# The owner of the callers' buckets in the Limits table: not a user id (no user id has a #).
CALLERS_BUCKET_OWNER = "#cells"


class RelayCallers:
    """Admits a Relay request once its caller is proven and within its budget."""

    def __init__(
        self,
        cells: Cells,
        directory: RelayDirectory,
        buckets: RateLimits,
        clock: Clock,
        per_caller: RateLimit,
    ) -> None:
        self._cells = cells
        self._directory = directory
        self._buckets = buckets
        self._clock = clock
        self._per_caller = per_caller

    def admit(self, request: RelayRequest) -> None:
        """Return if `request.caller` made this request for this cell, now; else refuse."""
        if not self._directory.has_peers:
            raise BadRequest("relay requests come from peer cells: this deployment is one cell")
        if request.target != self._cells.cell_id:
            raise BadRequest("relay request made for another cell")
        now = self._clock.now_ms()
        if abs(now - request.signed_at) > RELAY_CALL_WINDOW_MS:
            raise BadRequest("relay request signed outside the call window")
        if not self._signed_by_caller(request):
            raise BadRequest("relay request not signed by the calling cell")
        wait = self._buckets.take_or_wait(
            CALLERS_BUCKET_OWNER, request.caller, now, self._per_caller
        )
        if wait:
            raise RateLimited(f"cell {request.caller} calls too often", retry_after=wait)

    def _signed_by_caller(self, request: RelayRequest) -> bool:
        digest = request.digest()
        # The records kept first; read again (at most every few seconds) if none verifies,
        # since the caller may have a new key or a new side.
        for fresh in (False, True):
            sides = self._directory.sides_of(request.caller, fresh=fresh)
            if any(verifies(side.key, digest, request.signature) for side in sides):
                return True
        return False
