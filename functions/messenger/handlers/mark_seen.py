"""markSeen: the reader tells the sender it has seen messages."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import MarkSeen, ServerFrame


@message_route(MarkSeen)
def handler(frame: MarkSeen, caller: Caller, svc: Services) -> ServerFrame | None:
    svc.receipts(caller.endpoint).mark_seen(caller.user_id, frame.to, frame.message_ids)
    return None
