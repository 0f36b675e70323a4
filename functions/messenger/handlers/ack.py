"""ack: the recipient has the items; delete them and tell the senders."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import Ack, ServerFrame


@message_route(Ack)
def handler(frame: Ack, caller: Caller, svc: Services) -> ServerFrame | None:
    svc.receipts(caller.endpoint).acknowledge(caller.user_id, frame.ids, caller.device_id)
    return None
