"""The presence function (no route): tells a user's watchers that their presence changed.

Invoked asynchronously (Lambda's Event invocation) by whatever saw the change: a
$connect, a $disconnect, a post that found a connection closed, a visibility change.
A failure raises, so that Lambda tries the event again; a retry tells the state as it is
then, which is what a watcher wants to know.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.handlers._runtime import lambda_entry
from messenger.observability import logger
from messenger.transport.presence_events import PresenceEvent
from messenger.wiring import services


def _tell(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = PresenceEvent.from_payload(event)
    logger.append_keys(user=change.user_id)
    svc = services()
    changes = svc.presence_changes(svc.settings.connections_endpoint or change.endpoint)
    if change.hidden_only:
        changes.forget_hidden_watchers(change.user_id)
    else:
        changes.tell_change(change)
    return {"statusCode": 200}


handler = lambda_entry(_tell)
