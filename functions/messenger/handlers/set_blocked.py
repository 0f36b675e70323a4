"""setBlocked: whom the caller blocks."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, SetBlocked


@message_route(SetBlocked)
def handler(frame: SetBlocked, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.user_settings.set_blocked(caller.user_id, frame)
