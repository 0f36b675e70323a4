"""registerPush: register this device for mobile push through SNS."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import RegisterPush, ServerFrame


@message_route(RegisterPush)
def handler(frame: RegisterPush, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.push_registration.register(
        caller.user_id, frame.platform, frame.token, caller.device_id
    )
