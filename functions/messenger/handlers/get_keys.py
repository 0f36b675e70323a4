"""getKeys: a user's public keys."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import GetKeys, ServerFrame


@message_route(GetKeys)
def handler(frame: GetKeys, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.identity.keys_of(frame.user_id)
