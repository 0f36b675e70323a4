"""sync: one page of what is queued for the caller, in order, then syncDone."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, Sync


@message_route(Sync)
def handler(frame: Sync, caller: Caller, svc: Services) -> ServerFrame | None:
    # The page and its syncDone are posted (in order) rather than returned: a route
    # response can only carry one frame.
    catch_up = svc.catch_up(caller.endpoint)
    catch_up.sync(
        caller.user_id, caller.connection_id, frame, caller.directory_version, caller.device_id
    )
    return None
