"""getSettings: what the server holds for the caller."""

from __future__ import annotations

from messenger.handlers._runtime import Caller, message_route
from messenger.wiring import Services
from messenger_protocol.frames import GetSettings, ServerFrame


@message_route(GetSettings)
def handler(frame: GetSettings, caller: Caller, svc: Services) -> ServerFrame | None:
    return svc.user_settings.settings_of(caller.user_id)
