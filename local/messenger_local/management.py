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
from messenger_protocol.names import CLOSE_CODES, FrameType

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
    connection.closing_error = closing_error_of(frame) or connection.closing_error
    return web.Response(status=200)


def closing_error_of(frame: str | bytes) -> str | None:
    """The code of an error frame that announces a close (REPLACED, MOVED...), else None."""
    if not isinstance(frame, str) or f'"{FrameType.ERROR.value}"' not in frame:
        return None
    try:
        document = json.loads(frame)
    except ValueError:
        return None
    code = document.get("code") if isinstance(document, dict) else None
    return code if code in CLOSE_CODES else None


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
    # After an error frame that says why, with that reason's close code (§3 Closing:
    # what API Gateway cannot do, `messenger local` does).
    why = connection.closing_error
    if why is not None:
        gateway.spawn(connection.close(CLOSE_CODES[why], why))  # type: ignore[index]
    else:
        gateway.spawn(connection.close(WSCloseCode.OK, DELETED_REASON))
    return web.Response(status=204)
