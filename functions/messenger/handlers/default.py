"""$default: frames whose `action` matches no route (or that are not JSON at all)."""

from __future__ import annotations

from typing import Any

from messenger.errors import UnknownAction
from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services


@message_route(None)
def handler(document: Any, caller: Caller, svc: Services) -> dict[str, Any] | None:
    action = document.get("action") if isinstance(document, dict) else None
    if isinstance(action, str):
        raise UnknownAction(f"unknown action {action[:64]!r}")
    raise UnknownAction("frame has no action")
