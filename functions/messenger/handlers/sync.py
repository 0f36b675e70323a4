"""sync: every item still queued for the caller, in order, then syncDone."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import Sync
from messenger.wiring import Services


@message_route(Sync)
def handler(frame: Sync, caller: Caller, svc: Services) -> dict[str, Any] | None:
    # Items and syncDone are posted (in order) rather than returned, so a long queue
    # never races API Gateway's 29 s integration timeout for its final frame.
    svc.messaging(caller.endpoint).sync(caller.user_id, caller.connection_id)
    return None
