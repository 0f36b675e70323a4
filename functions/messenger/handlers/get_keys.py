"""getKeys: a user's public keys."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, message_route
from messenger.models import GetKeys
from messenger.wiring import Services


@message_route(GetKeys)
def handler(frame: GetKeys, caller: Caller, svc: Services) -> dict[str, Any] | None:
    return svc.identity.keys_of(frame.user_id)
