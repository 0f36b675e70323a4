"""sendMessage: store for the recipient, acknowledge the sender, then deliver live.

Where delivering takes several posts (a recipient's connections, its devices', the
sender's other devices'), the ack is posted to the sender's connection as soon as every
copy is stored, ahead of the route's own answer: no fan-out holds it (docs/performance.md,
"Hot recipients"). Otherwise (one post or none) it is the route's answer, made once the
message is handed over (or its device pushed), as every other frame's is: an ack posted
ahead would wait for a post of its own, and cost the invocation one more.
"""

from __future__ import annotations

import dataclasses

from messenger.contract import Metric
from messenger.handlers._runtime import Caller, message_route
from messenger.observability import count, logger
from messenger.wiring import Services
from messenger_protocol.frames import SendMessage, ServerFrame


@message_route(SendMessage)
def handler(frame: SendMessage, caller: Caller, svc: Services) -> ServerFrame | None:
    messaging = svc.messaging(caller.endpoint)
    sent = messaging.send(caller.user_id, frame, caller.device_id)
    # `epoch` is the recipient's home's, which stored it; `dv` is this cell's (§6, §7).
    ack = dataclasses.replace(sent.ack, dv=caller.directory_version)
    if messaging.posts_to_make(sent) < 2 or not _ack_ahead(ack, caller, svc):
        messaging.deliver(sent)
        return ack
    try:
        messaging.deliver(sent)
    except Exception:
        # Acknowledged already: the copies wait in their queues for the devices' sync.
        logger.exception("delivery failed after the ack")
        count(Metric.LIVE_POSTS_FAILED)
    return None


def _ack_ahead(ack: ServerFrame, caller: Caller, svc: Services) -> bool:
    """Post the ack to the sender's connection before any delivery; False if that could
    not be done (the route's answer then carries it, after the posts)."""
    try:
        svc.live(caller.endpoint).post(caller.user_id, caller.connection_id, ack)
    except Exception:
        logger.warning("ack not posted ahead; answered after the posts", exc_info=True)
        return False
    return True
