"""sendMessage: store for the recipient, acknowledge the sender, deliver live."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import SendMessage
from messenger.wiring import Services


@message_route(SendMessage)
def handler(frame: SendMessage, caller: Caller, svc: Services) -> dict[str, Any] | None:
    return svc.messaging(caller.endpoint).send(caller.user_id, frame)
