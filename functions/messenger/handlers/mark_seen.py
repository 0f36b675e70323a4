"""markSeen: the reader tells the sender it has seen messages."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import MarkSeen
from messenger.wiring import Services


@message_route(MarkSeen)
def handler(frame: MarkSeen, caller: Caller, svc: Services) -> dict[str, Any] | None:
    svc.messaging(caller.endpoint).mark_seen(caller.user_id, frame.to, frame.message_ids)
    return None
