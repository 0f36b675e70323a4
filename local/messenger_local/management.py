"""The @connections management API: POST, GET and DELETE on one connection.

Answers the way API Gateway does, so boto3's `apigatewaymanagementapi` client parses
them unchanged: errors carry their type in `x-amzn-ErrorType` (410 GoneException,
413 PayloadTooLargeException) and times are ISO 8601. Requests are signed with
SigV4 by boto3; like any local emulator we do not check the signature.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import WSCloseCode, web

from messenger_local.connections import ConnectionGoneError, LiveConnection
from messenger_local.gateway import Gateway, json_response
from messenger_protocol.names import CLOSE_CODES, ErrorCode

DELETED_REASON = "Connection Closed Normally"  # what $disconnect says after a DELETE


def _error(status: int, error_type: str, message: str | None) -> web.Response:
    return json_response(status, {"message": message}, headers={"x-amzn-ErrorType": error_type})


def gone() -> web.Response:
    """410 GoneException: no open connection has that id."""
    return _error(410, "GoneException", None)


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _connection(gateway: Gateway, request: web.Request) -> LiveConnection | None:
    return gateway.connections.get(request.match_info["connection_id"])


async def post_to_connection(gateway: Gateway, request: web.Request) -> web.Response:
    """POST: send the request body to the socket as one frame."""
    data = await request.read()
    if len(data) > gateway.limits.max_message_bytes:
        return _error(413, "PayloadTooLargeException", "Message too long")
    connection = _connection(gateway, request)
    if connection is None:
        return gone()
    try:
        frame: str | bytes = data.decode("utf-8")
    except UnicodeDecodeError:
        frame = data
    try:
        # Answer only once the frame is written: a handler's posts then reach the
        # client before that handler's route response.
        await connection.send(frame)
    except ConnectionGoneError:
        return gone()
    close_code = _closing_code_of(frame)
    if close_code is not None:
        connection.close_code_on_delete = close_code
    return web.Response(status=200)


def _closing_code_of(frame: str | bytes) -> int | None:
    """The close code an `error` frame announces (§3 Closing: MOVED 1012, REPLACED 1008),
    which API Gateway cannot send but `messenger local` does on the DELETE that follows."""
    if not isinstance(frame, str) or '"error"' not in frame:
        return None
    try:
        document = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("type") != "error":
        return None
    code = document.get("code")
    return CLOSE_CODES.get(ErrorCode(code)) if code in CLOSE_CODES else None


async def get_connection(gateway: Gateway, request: web.Request) -> web.Response:
    """GET: when the connection opened, who opened it, when it was last active."""
    connection = _connection(gateway, request)
    if connection is None:
        return gone()
    return json_response(
        200,
        {
            "connectedAt": _iso(connection.handshake.connected_at),
            "identity": connection.handshake.identity(),
            "lastActiveAt": _iso(connection.last_active_at),
        },
    )


async def delete_connection(gateway: Gateway, request: web.Request) -> web.Response:
    """DELETE: close the socket (its $disconnect follows)."""
    connection = gateway.connections.remove(request.match_info["connection_id"])
    if connection is None:
        return gone()
    # Answer at once, like API Gateway; the closing handshake finishes in the background.
    code = connection.close_code_on_delete or WSCloseCode.OK
    gateway.spawn(connection.close(code, DELETED_REASON))
    return web.Response(status=204)
