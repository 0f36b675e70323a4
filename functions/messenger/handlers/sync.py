"""sync: every item still queued for the caller, in order, then syncDone."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, Sync


@message_route(Sync)
def handler(frame: Sync, caller: Caller, svc: Services) -> ServerFrame | None:
    # Items and syncDone are posted (in order) rather than returned, so a long queue
    # never races API Gateway's 29 s integration timeout for its final frame.
    svc.messaging(caller.endpoint).sync(caller.user_id, caller.connection_id)
    return None
