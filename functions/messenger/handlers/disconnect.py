"""$disconnect: forget the connection; the user goes offline if it was the last."""

from __future__ import annotations

from typing import Any

from messenger.handlers._runtime import Caller, lifecycle_route
from messenger.wiring import Services


def _closed(caller: Caller, event: dict[str, Any], svc: Services) -> None:
    svc.live(caller.endpoint).connection_closed(caller.user_id, caller.connection_id)


handler = lifecycle_route(_closed)
