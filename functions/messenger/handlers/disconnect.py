"""$disconnect: forget the connection; the user goes offline if it was the last."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, lifecycle_route
from messenger.observability import logger
from messenger.wiring import Services


def _closed(caller: Caller, event: dict[str, Any], svc: Services) -> None:
    if not svc.cell_view.serving():
        # A side that is not active accepts no write (docs/protocol.md §7 Fencing): its
        # tables replicate to the active side, where a profile updated here (the
        # connection removed, lastSeen) would replace, whole, what changed there since.
        # The active side prunes a connection of this side's API at its first post.
        logger.info("disconnect on a side that is not active: nothing written")
        return
    svc.live(caller.endpoint).connection_closed(caller.user_id, caller.connection_id)


handler = lifecycle_route(_closed)
