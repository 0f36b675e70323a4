"""$connect REQUEST authorizer: the connect signature of docs/protocol.md §1.

Allow carries the userId as principalId and in the context, which API Gateway hands
to every later event of the connection. Every refusal of the caller is a Deny (HTTP
403); API Gateway itself answers 401 when an identity source is missing. A failure of
our own (a throttled table, a timeout) is not the caller's fault and must not read as a
refusal, which clients take as final: the authorizer raises, and API Gateway answers
500, which clients retry.

A side of the cell that is not active (docs/protocol.md §7 Fencing) refuses every
handshake, so it takes no registration, no replayed connect query, and gives no second
rate-limit budget; one that was just promoted answers 500 for the few seconds before it
takes writes (logic/cell_view.py).
"""

from __future__ import annotations

import secrets
from typing import Any

import nacl.signing  # noqa: F401  libsodium loads at init here, not on the first connect
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.contract import CONNECT_DENIED
from messenger.errors import AccessDenied, SidePromoting
from messenger.handlers._runtime import count_refusal, lambda_entry
from messenger.logic.connect_audience import reached_endpoint
from messenger.logic.identity import parse_connect_query
from messenger.observability import logger
from messenger.wiring import services
from messenger_protocol.names import ErrorCode


def policy(principal: str, effect: str, resource: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def _authorize(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    resource = event.get("methodArn", "*")
    request_context = event.get("requestContext") or {}
    # Which connection attempt this is; without one, a fresh id that matches no other.
    attempt = request_context.get("connectionId") or secrets.token_hex(16)
    source_ip = (request_context.get("identity") or {}).get("sourceIp") or ""
    try:
        svc = services()
        # A side that is not active takes no handshake, so no registration either
        # (docs/protocol.md §7 Fencing).
        svc.cell_view.admit()
        request = parse_connect_query(
            event.get("queryStringParameters"),
            str(attempt),
            str(source_ip),
            reached_endpoint(request_context.get("domainName"), request_context.get("stage")),
        )
        user_id = svc.identity.authenticate(request)
    except AccessDenied as denial:
        logger.info("connect refused", extra={"reason": str(denial)})
        count_refusal(CONNECT_DENIED)
        # API Gateway answers a Deny with a bare "Forbidden" and drops the context; the
        # local emulator puts the reason in the 403's body, for the person at the keyboard.
        return policy("anonymous", "Deny", resource) | {"context": {"reason": str(denial)}}
    except SidePromoting as promoting:
        # Not the caller's fault: a 500, which clients retry (docs/protocol.md §1).
        logger.info("connect deferred", extra={"reason": str(promoting)})
        raise
    except Exception:
        logger.exception("authorizer failed")
        count_refusal(ErrorCode.INTERNAL)
        raise
    logger.thread_safe_append_keys(user=user_id)
    # A linked device rides in the context too: every later event of the connection is
    # that device's (its queue, its acks, docs/protocol.md §8); absent means device 1.
    connection: dict[str, str] = {"userId": user_id}
    if not request.query.is_primary_device:
        connection["deviceId"] = request.query.device_id
    return policy(user_id, "Allow", resource) | {"context": connection}


handler = lambda_entry(_authorize)
