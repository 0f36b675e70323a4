"""setDevices: device 1 stores the user's signed device list (docs/protocol.md §8)."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import ServerFrame, SetDevices


@message_route(SetDevices)
def handler(frame: SetDevices, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.linked_devices(caller.endpoint).set_devices(caller.user_id, caller.device_id, frame)
