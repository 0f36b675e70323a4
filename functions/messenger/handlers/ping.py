"""ping: keeps a connection under API Gateway's 10-minute idle limit."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import Ping, PongFrame, ServerFrame


@message_route(Ping)
def handler(frame: Ping, caller: Caller, svc: Services) -> ServerFrame | None:
    return PongFrame()
