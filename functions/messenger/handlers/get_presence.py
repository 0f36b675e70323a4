"""getPresence: online state and lastSeen of users, optionally watching for changes."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import GetPresence, ServerFrame


@message_route(GetPresence)
def handler(frame: GetPresence, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.presence(caller.endpoint).look_up(
        caller.user_id, caller.connection_id, frame.user_ids, frame.subscribe
    )
