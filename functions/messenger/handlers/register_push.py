"""registerPush: register this device for mobile push through SNS."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import RegisterPush
from messenger.wiring import Services


@message_route(RegisterPush)
def handler(frame: RegisterPush, caller: Caller, svc: Services) -> dict[str, Any] | None:
    return svc.push_registration.register(caller.user_id, frame.platform, frame.token)
