"""The WebSocket side of the API, as API Gateway runs it.

A connection's life: the REQUEST authorizer (401 without its identity sources, 403
on Deny), `$connect` (a non-2xx statusCode fails the handshake), then one MESSAGE
invocation per frame, routed on `$request.body.action` with `$default` for the rest,
and `$disconnect` however the connection ends. Frames over 32 KB or messages over
128 KB close with 1009, binary frames with 1003, idleness and old age with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from messenger_local.connections import ConnectionGoneError, LiveConnection
from messenger_local.events import (
    Handshake,
    authorizer_context,
    authorizer_event,
    connect_event,
    disconnect_event,
    epoch_ms,
    message_event,
    new_id,
)
from messenger_local.framing import FrameSizeGuard, guard_frames
from messenger_local.gateway import Gateway, json_response
from messenger_local.invocations import Invocation, frame_outcome
from messenger_local.lambdas import Outcome
from messenger_local.policy import InvalidAuthorizerResponse, decide

CLIENT_CLOSED = "Client-side close frame status code"
CLOSED_ABNORMALLY = "Connection closed abnormally"
GOING_AWAY = "Going away"
RouteT = TypeVar("RouteT")
ROUTE_SELECTION_KEY = "action"  # contract.ROUTE_SELECTION_EXPRESSION is $request.body.action


@dataclass(frozen=True)
class Admission:
    """An accepted handshake: what later events carry in requestContext.authorizer."""

    authorizer: dict[str, Any] | None
    principal_id: str | None


def select_route(body: str, routes: Mapping[str, RouteT]) -> RouteT | None:
    """API Gateway's route selection on $request.body.action, falling back to $default."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # too deep for Python is "not JSON" here too
        document = None
    action = document.get(ROUTE_SELECTION_KEY) if isinstance(document, dict) else None
    # Route keys starting with '$' are API Gateway's own: a frame cannot pick them.
    if isinstance(action, str) and not action.startswith("$") and action in routes:
        return routes[action]
    return routes.get("$default")


def gateway_frame(message: str, connection_id: str, request_id: str) -> str:
    """The frame API Gateway itself sends when a route cannot answer."""
    return json.dumps(
        {"message": message, "connectionId": connection_id, "requestId": request_id},
        separators=(",", ":"),
    )


def _outcome_label(outcome: Outcome) -> str:
    if outcome.timed_out:
        return "timed out"
    if outcome.error is not None:
        return f"raised {type(outcome.error).__name__}"
    return "ok"


def _status_of(response: Any) -> int:
    if isinstance(response, dict):
        try:
            return int(response.get("statusCode", 200))
        except (TypeError, ValueError):
            return 502
    return 200


# --- the handshake -------------------------------------------------------------------


def _handshake_of(request: web.Request, gateway: Gateway) -> Handshake:
    return Handshake(
        connection_id=new_id(),
        connected_at=epoch_ms(),
        source_ip=request.remote or "127.0.0.1",
        user_agent=request.headers.get("User-Agent"),
        headers=tuple((str(name), value) for name, value in request.headers.items()),
        query=tuple(request.query.items()),
        port=gateway.port,
        scheme=request.scheme,
    )


async def _authorize(gateway: Gateway, handshake: Handshake) -> Admission | web.Response:
    authorizer = gateway.authorizer
    if authorizer is None:
        return Admission(authorizer=None, principal_id=None)
    query = dict(handshake.query)
    claimed = query.get("userId")  # for the log only: nothing is proven yet

    def log(status: int, outcome: str, duration_ms: float = 0.0, request_id: str = "") -> None:
        gateway.record(
            Invocation(
                "authorizer",
                handshake.connection_id,
                claimed,
                status,
                outcome,
                duration_ms,
                request_id,
            )
        )

    missing = [name for name in authorizer.identity_query_params if not query.get(name)]
    if missing:
        # API Gateway refuses without calling the authorizer.
        log(401, f"unauthorized (no {', '.join(missing)})")
        return json_response(401, {"message": "Unauthorized"})
    event = authorizer_event(gateway.api, handshake, new_id())
    outcome = await gateway.functions.invoke(authorizer.function_name, event)
    if outcome.error is not None and str(outcome.error) == "Unauthorized":
        log(401, "unauthorized", outcome.duration_ms, outcome.request_id)
        return json_response(401, {"message": "Unauthorized"})
    if not outcome.succeeded:
        log(500, _outcome_label(outcome), outcome.duration_ms, outcome.request_id)
        return json_response(500, {"message": "Internal server error"})
    try:
        decision = decide(outcome.response, event["methodArn"])
    except InvalidAuthorizerResponse as invalid:
        log(500, f"invalid response: {invalid}", outcome.duration_ms, outcome.request_id)
        return json_response(500, {"message": "Internal server error"})
    if not decision.allowed:
        log(403, "deny", outcome.duration_ms, outcome.request_id)
        # API Gateway's body is a bare "Forbidden"; locally it also says why, in words
        # (the authorizer's reason, which AWS drops on a Deny).
        reason = decision.context.get("reason")
        body = {"message": "Forbidden"} | ({"reason": reason} if reason else {})
        return json_response(403, body)
    log(200, "allow", outcome.duration_ms, outcome.request_id)
    context = authorizer_context(decision.principal_id, decision.context, int(outcome.duration_ms))
    return Admission(authorizer=context, principal_id=decision.principal_id)


async def _connect(
    gateway: Gateway, handshake: Handshake, admission: Admission
) -> web.Response | None:
    """Run $connect; a refusal response, or None when the connection may open."""
    route = gateway.routes.get("$connect")
    if route is None:
        return None
    event = connect_event(gateway.api, handshake, admission.authorizer, new_id())
    outcome = await gateway.functions.invoke(route.function_name, event)
    status = _status_of(outcome.response) if outcome.succeeded else 500
    gateway.record(
        Invocation(
            "$connect",
            handshake.connection_id,
            admission.principal_id,
            status,
            _outcome_label(outcome),
            outcome.duration_ms,
            outcome.request_id,
        )
    )
    if not outcome.succeeded:
        return json_response(500, {"message": "Internal server error"})
    if not 200 <= status < 300:
        body = outcome.response.get("body") if isinstance(outcome.response, dict) else None
        return web.Response(status=status, text=body if isinstance(body, str) else None)
    return None


async def serve_websocket(gateway: Gateway, request: web.Request) -> web.StreamResponse:
    """The aiohttp handler for ws://HOST:PORT/STAGE."""
    socket = web.WebSocketResponse(
        autoping=False,  # pings are answered below, so they do not reset the idle timer
        compress=False,  # API Gateway negotiates no extension: frame sizes are raw sizes
        max_msg_size=gateway.limits.max_message_bytes + 1,  # aiohttp's limit is exclusive
    )
    if not socket.can_prepare(request).ok:
        return json_response(426, {"message": "Upgrade Required"})
    if gateway.out_of_service:
        # A lost region: the server's failure, so 5xx (docs/protocol.md §1); clients ask the
        # directory again (§6, §7).
        return json_response(503, {"message": "Service Unavailable"})
    handshake = _handshake_of(request, gateway)
    admission = await _authorize(gateway, handshake)
    if isinstance(admission, web.Response):
        return admission
    refusal = await _connect(gateway, handshake, admission)
    if refusal is not None:
        return refusal
    transport = request.transport
    if transport is None or transport.is_closing():
        gateway.spawn(_disconnect(gateway, handshake, admission, 1006, CLOSED_ABNORMALLY))
        return socket
    guard = guard_frames(transport, gateway.limits.max_frame_bytes)
    try:
        await socket.prepare(request)
    except ConnectionError:
        # The client left during $connect: the connection opened as far as the
        # functions know, so it closes for them too.
        gateway.spawn(_disconnect(gateway, handshake, admission, 1006, CLOSED_ABNORMALLY))
        raise
    connection = LiveConnection(
        handshake,
        socket,
        admission.authorizer,
        admission.principal_id,
        in_flight=asyncio.Semaphore(gateway.limits.max_in_flight_per_connection),
    )
    gateway.connections.add(connection)
    if gateway.out_of_service:
        # Its region was lost while this handshake ran: it closes as the others did.
        gateway.spawn(connection.close(1001, "Going away"))
    try:
        await _receive_frames(gateway, connection, guard)
    finally:
        gateway.connections.remove(connection.connection_id)
        code, reason = connection.close_status or (
            socket.close_code or WSCloseCode.ABNORMAL_CLOSURE,
            CLOSED_ABNORMALLY,
        )
        gateway.spawn(_disconnect(gateway, handshake, admission, code, reason))
    return socket


# --- frames ----------------------------------------------------------------------------


def _seconds_left(gateway: Gateway, connection: LiveConnection) -> float:
    now = time.monotonic()
    idle_left = connection.last_active_monotonic + gateway.limits.idle_timeout - now
    age_left = connection.opened_monotonic + gateway.limits.max_duration - now
    return min(idle_left, age_left)


async def _receive_frames(
    gateway: Gateway, connection: LiveConnection, guard: FrameSizeGuard
) -> None:
    """Read frames until the connection ends, dispatching each text frame."""
    socket = connection.socket
    while True:
        try:
            # aiohttp treats a timeout of 0 as "no timeout".
            message = await socket.receive(timeout=max(_seconds_left(gateway, connection), 1e-3))
        except TimeoutError:
            await connection.close(WSCloseCode.GOING_AWAY, GOING_AWAY)
            return
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY) and guard.oversized:
            await connection.close(WSCloseCode.MESSAGE_TOO_BIG, "Message too big")
            return
        if message.type is WSMsgType.TEXT:
            connection.touch()
            gateway.spawn(_dispatch_in_turn(gateway, connection, message.data))
        elif message.type is WSMsgType.BINARY:
            await connection.close(WSCloseCode.UNSUPPORTED_DATA, "Binary frames are not supported")
            return
        elif message.type is WSMsgType.PING:
            await socket.pong(message.data)
        elif message.type is WSMsgType.PONG:
            continue
        elif message.type is WSMsgType.CLOSE:
            # A close frame without a status code is reported as 1005 (RFC 6455 §7.1.5).
            code = message.data if isinstance(message.data, int) and message.data else 1005
            if connection.close_status is None:
                connection.close_status = (code, CLIENT_CLOSED)
            return
        else:
            # ERROR (aiohttp closed it: 1009 past 128 KB, 1007 bad UTF-8...), CLOSED
            # (the peer vanished without a close frame) or CLOSING (someone here called
            # close, and set close_status first).
            if connection.close_status is None:
                if message.type is WSMsgType.ERROR:
                    code = socket.close_code or WSCloseCode.INTERNAL_ERROR
                    connection.close_status = (code, str(message.data))
                else:
                    connection.close_status = (WSCloseCode.ABNORMAL_CLOSURE, CLOSED_ABNORMALLY)
            return


async def _send_quietly(connection: LiveConnection, data: str) -> None:
    # The client may have left while its frame was being handled.
    with contextlib.suppress(ConnectionGoneError):
        await connection.send(data)


async def _dispatch_in_turn(gateway: Gateway, connection: LiveConnection, body: str) -> None:
    """Dispatch once the connection has an invocation to spare (Limits): frames beyond
    that wait here, in order, rather than in front of other connections' frames."""
    async with connection.in_flight:
        await _dispatch(gateway, connection, body)


async def _dispatch(gateway: Gateway, connection: LiveConnection, body: str) -> None:
    """One MESSAGE invocation, then its route response (two-way routes only)."""
    request_id = new_id()
    connection_id, user = connection.connection_id, connection.principal_id
    own = select_route(body, gateway.gateway_routes)
    if own is not None:
        # No function and no write: the stage answers from its variables (a MOCK on AWS).
        await _send_quietly(connection, gateway.answer_itself(own))
        gateway.record(Invocation(own.key, connection_id, user, 200, "ok", 0.0, by_gateway=True))
        return
    route = select_route(body, gateway.routes)
    if route is None:
        await _send_quietly(connection, gateway_frame("Forbidden", connection_id, request_id))
        gateway.record(Invocation("(no route)", connection_id, user, 403, "forbidden", 0.0))
        return
    event = message_event(
        gateway.api,
        connection.handshake,
        connection.authorizer,
        route.key,
        body,
        request_id,
        new_id(),
        gateway.stage_variables,
    )
    outcome = await gateway.functions.invoke(route.function_name, event)
    if outcome.timed_out:
        status, label = 504, "timed out"
        await _send_quietly(
            connection, gateway_frame("Endpoint request timed out", connection_id, request_id)
        )
    elif outcome.error is not None:
        status, label = 500, _outcome_label(outcome)
        await _send_quietly(
            connection, gateway_frame("Internal server error", connection_id, request_id)
        )
    else:
        response = outcome.response
        status = _status_of(response)
        reply = response.get("body") if isinstance(response, dict) else None
        label = frame_outcome(reply)
        if route.two_way and reply is not None:
            await _send_quietly(connection, reply if isinstance(reply, str) else json.dumps(reply))
    gateway.record(
        Invocation(
            route.key, connection_id, user, status, label, outcome.duration_ms, outcome.request_id
        )
    )


async def _disconnect(
    gateway: Gateway, handshake: Handshake, admission: Admission, code: int, reason: str
) -> None:
    route = gateway.routes.get("$disconnect")
    if route is None:
        return
    event = disconnect_event(
        gateway.api, handshake, admission.authorizer, int(code), reason, new_id()
    )
    outcome = await gateway.functions.invoke(route.function_name, event)
    status = _status_of(outcome.response) if outcome.succeeded else 500
    gateway.record(
        Invocation(
            "$disconnect",
            handshake.connection_id,
            admission.principal_id,
            status,
            f"{_outcome_label(outcome)} ({int(code)})",
            outcome.duration_ms,
            outcome.request_id,
        )
    )
