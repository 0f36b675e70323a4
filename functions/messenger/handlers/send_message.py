"""sendMessage: store for the recipient, acknowledge the sender, deliver live."""

from __future__ import annotations

import dataclasses

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import SendMessage, ServerFrame


@message_route(SendMessage)
def handler(frame: SendMessage, caller: Caller, svc: Services) -> ServerFrame | None:
    ack = svc.messaging(caller.endpoint).send(caller.user_id, frame, caller.device_id)
    # `epoch` is the recipient's home's, which stored it; `dv` is this cell's (§6, §7).
    return dataclasses.replace(ack, dv=caller.directory_version)
