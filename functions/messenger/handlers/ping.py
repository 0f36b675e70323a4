"""ping: keeps a connection under API Gateway's 10-minute idle limit."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import PONG_FRAME, Ping
from messenger.wiring import Services


@message_route(Ping)
def handler(frame: Ping, caller: Caller, svc: Services) -> dict[str, Any] | None:
    return PONG_FRAME
