"""setPresenceVisibility: who may see the caller's presence."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, SetPresenceVisibility


@message_route(SetPresenceVisibility)
def handler(frame: SetPresenceVisibility, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.presence(caller.endpoint).set_visibility(caller.user_id, frame)
