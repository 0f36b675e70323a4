"""Relay: what peer cells invoke to reach this cell's users (not an API route).

The answer is an answer or a refusal (transport/relay_records.py); nothing is raised to
Lambda, so the caller tells a refusal (a docs/protocol.md code it passes on) from a failure.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.errors import SideFenced, SidePromoting, StaleDevices, as_refusal
from messenger.handlers._runtime import count_refusal, lambda_entry
from messenger.observability import logger
from messenger.transport.relay_records import answered, read_request, refused
from messenger.wiring import services
from messenger_protocol.names import ErrorCode


def _relay(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = read_request(event)
        logger.append_keys(op=request.operation, caller_cell=request.caller)
        svc = services()
        svc.cell_view.admit()
        return answered(svc.relay().answer(request))
    except (SideFenced, SidePromoting) as fenced:
        # The caller tries the cell's other side (transport/relay.py).
        logger.info("relay refused: side fenced", extra={"reason": str(fenced)})
        count_refusal(ErrorCode.MOVED)
        return refused(ErrorCode.MOVED, str(fenced))
    except Exception as error:
        refusal = as_refusal(error)
        if refusal is not None:
            logger.info("relay refused", extra={"code": refusal.code, "reason": refusal.message})
            count_refusal(refusal.code)
            if isinstance(refusal, StaleDevices):
                versions = {"devices": refusal.devices, "selfDevices": refusal.self_devices}
                return refused(refusal.code, refusal.message, **versions)
            return refused(refusal.code, refusal.message)
        logger.exception("relay failed")
        count_refusal(ErrorCode.INTERNAL)
        return refused(ErrorCode.INTERNAL, "internal error, try again")


handler = lambda_entry(_relay)
