"""ack: the recipient has the items; delete them and tell the senders."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import Ack
from messenger.wiring import Services


@message_route(Ack)
def handler(frame: Ack, caller: Caller, svc: Services) -> dict[str, Any] | None:
    svc.messaging(caller.endpoint).acknowledge(caller.user_id, frame.ids)
    return None
