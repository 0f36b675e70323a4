"""$connect: record the connection; the user comes online if it is the first."""

from __future__ import annotations

import time
from typing import Any

from messenger.handlers._runtime import Caller, lifecycle_route
from messenger.wiring import Services


def _opened(caller: Caller, event: dict[str, Any], svc: Services) -> None:
    connected_at = event["requestContext"].get("connectedAt") or int(time.time() * 1000)
    svc.live(caller.endpoint).connection_opened(
        caller.user_id, caller.connection_id, int(connected_at), caller.device_id
    )


handler = lifecycle_route(_opened)
