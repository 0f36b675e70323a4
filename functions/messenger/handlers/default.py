"""$default: frames whose `action` matches no route (or that are not JSON at all)."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, unknown_action


@message_route(None)
def handler(document: Any, caller: Caller, svc: Services) -> ServerFrame | None:
    raise unknown_action(document)
