"""markSeen: the reader tells the sender it has seen messages; answered `seenStored` once
the receipt is queued (docs/protocol.md §7: the reader keeps its mark until then)."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import MarkSeen, SeenStoredFrame, ServerFrame


@message_route(MarkSeen)
def handler(frame: MarkSeen, caller: Caller, svc: Services) -> ServerFrame | None:
    epoch = svc.receipts(caller.endpoint).mark_seen(caller.user_id, frame.to, frame.message_ids)
    return SeenStoredFrame(to=frame.to, message_ids=frame.message_ids, epoch=epoch)
