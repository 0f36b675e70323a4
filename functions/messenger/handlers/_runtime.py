"""What every WebSocket route handler shares: logging context, metrics flush, frame
parsing, and turning errors into docs/protocol.md error frames.

A handler module only says which frame model it takes and which logic call answers it.
No exception ever leaves a handler: refusals become `error` frames, anything unexpected
is logged with the request id and answered `INTERNAL`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.contract import DIRECTORY_VERSION_STAGE_VARIABLE, refused_metric
from messenger.errors import ConnectionGone, Refused, SideFenced, SidePromoting, as_refusal
from messenger.observability import logger, metrics
from messenger.wiring import Services, services
from messenger_protocol.frames import (
    ClientFrame,
    ErrorFrame,
    ServerFrame,
    check_frame_size,
    load_json,
    reference_of,
)
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import ErrorCode

F = TypeVar("F", bound=ClientFrame)
LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class Caller:
    """The authenticated user behind a connection, from the authorizer's context."""

    user_id: str
    connection_id: str
    endpoint: str  # the @connections endpoint of the caller's API stage
    # The newest directory version this cell knows (`dv`, docs/protocol.md §6).
    directory_version: int = 0
    # Which of the user's devices holds the connection (docs/protocol.md §8).
    device_id: str = PRIMARY_DEVICE_ID


def caller_of(event: dict[str, Any], svc: Services) -> Caller:
    context = event["requestContext"]
    authorizer = context.get("authorizer") or {}
    user_id = authorizer.get("userId") or authorizer.get("principalId")
    if not isinstance(user_id, str) or not user_id:
        raise RuntimeError("event carries no authorizer context")
    endpoint = svc.settings.connections_endpoint or (
        f"https://{context['domainName']}/{context['stage']}"
    )
    device_id = authorizer.get("deviceId") or PRIMARY_DEVICE_ID
    return Caller(
        user_id,
        context["connectionId"],
        endpoint,
        directory_version_of(event),
        str(device_id),
    )


def directory_version_of(event: dict[str, Any]) -> int:
    """The newest directory version this cell knows (docs/protocol.md §6, `dv` in `ack`,
    `syncDone` and `pong`): its API stage's `dv` variable, which the directory publisher
    sets after each publish (messenger_directory.stages) and API Gateway passes in every
    event. 0, no directory yet, when the stage has none."""
    value = (event.get("stageVariables") or {}).get(DIRECTORY_VERSION_STAGE_VARIABLE)
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def reply(frame: ServerFrame | None) -> dict[str, Any]:
    """A route response: API Gateway sends `body` back to the caller on two-way routes."""
    response: dict[str, Any] = {"statusCode": 200}
    if frame is not None:
        response["body"] = frame.to_json()
    return response


def count_refusal(code: ErrorCode | str) -> None:
    metrics.add_metric(name=refused_metric(code), unit=MetricUnit.Count, value=1)


def refused(refusal: Refused, ref: str | None) -> ErrorFrame:
    """The error frame of a refusal (counted and logged); `retryAfter` where it has one."""
    logger.info("refused", extra={"code": refusal.code, "reason": refusal.message})
    count_refusal(refusal.code)
    return ErrorFrame(
        code=refusal.code,
        message=refusal.message,
        ref=ref,
        retry_after=getattr(refusal, "retry_after", None),
        devices=getattr(refusal, "devices", None),
        self_devices=getattr(refusal, "self_devices", None),
    )


def too_many_refused(caller: Caller) -> bool:
    """Count a refused frame against its connection (every frame counts, docs/protocol.md
    §3: unknown actions and frames that are not JSON too); True when that was one too
    many, and the connection is closed (TOO_MANY_REFUSED). Overloaded storage is not the
    client's doing and is not counted. Never fails the refusal itself."""
    try:
        svc = services()
        if svc.rate_limiter.take_refused(caller.user_id, caller.connection_id):
            return False
        svc.live(caller.endpoint).close_refusing(caller.user_id, caller.connection_id)
        count_refusal(ErrorCode.TOO_MANY_REFUSED)
        return True
    except Exception:
        logger.warning("could not count a refused frame", exc_info=True)
        return False


def lambda_entry(fn: LambdaHandler) -> LambdaHandler:
    """Powertools around a handler: correlation id, EMF flush (Lambda traces it itself);
    with metrics disabled (the local stack, the benchmarks) they are dropped."""

    def with_own_keys(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # The keys that name this invocation are thread-local as well: where several
        # invocations share a process (the local stack), the logger's global keys hold
        # whichever invocation started last.
        # A peer cell's Relay event need not be an object: name what there is.
        request = event.get("requestContext") if isinstance(event, dict) else None
        request = request if isinstance(request, dict) else {}
        logger.thread_safe_append_keys(
            function_name=context.function_name,
            function_request_id=context.aws_request_id,
            correlation_id=request.get("requestId"),
            connection=request.get("connectionId"),
        )
        return fn(event, context)

    with_logging = logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )(with_own_keys)
    with_metrics = metrics.log_metrics(with_logging)

    def entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            return with_metrics(event, context)
        finally:
            if is_metrics_disabled():
                # A disabled flush keeps the metrics, and powertools prints a metric
                # regardless once it holds 100 values: disabled means dropped.
                metrics.clear_metrics()

    return entry


def moved_away(caller: Caller, svc: Services, ref: str | None) -> dict[str, Any]:
    """A frame on a side that is not active (docs/protocol.md §7 Fencing): nothing is
    written; the caller gets `error` MOVED, then the connection closes (§3 Closing: the
    frame first, since DeleteConnection sets no close code; locally it closes 1012)."""
    logger.info("frame refused: side fenced", extra={"side": svc.cell_view.own_side})
    count_refusal(ErrorCode.MOVED)
    connections = svc.connections(caller.endpoint)
    frame = ErrorFrame(
        code=ErrorCode.MOVED,
        message="this side of the cell is not active: fetch the directory",
        ref=ref,
    )
    try:
        with contextlib.suppress(ConnectionGone):
            connections.post(caller.connection_id, frame)
        connections.close(caller.connection_id)
    except Exception:  # the refusal stands; the client's next frame is refused again
        logger.warning("could not tell or close a connection on a fenced side", exc_info=True)
    return {"statusCode": 200}


def _document_or_none(event: dict[str, Any]) -> Any:
    """The frame's JSON, for an error's `ref` only; None if it is not JSON."""
    try:
        return load_json(event.get("body"))
    except Refused:
        return None


def failed(message: str, document: Any) -> dict[str, Any]:
    """An INTERNAL answer (counted): not the caller's fault, and worth sending again."""
    count_refusal(ErrorCode.INTERNAL)
    return reply(ErrorFrame(code=ErrorCode.INTERNAL, message=message, ref=reference_of(document)))


Answer = Callable[[F, Caller, Services], ServerFrame | None]


def message_route(model: type[F] | None) -> Callable[[Answer[F]], LambdaHandler]:
    """Decorate `answer(frame, caller, services)` into a Lambda handler for a frame route."""

    def decorate(answer: Answer[F]) -> LambdaHandler:
        def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
            document: Any = None
            caller: Caller | None = None
            try:
                svc = services()
                caller = caller_of(event, svc)
                logger.thread_safe_append_keys(user=caller.user_id)
                svc.cell_view.admit()
                # A user whose range moved away: MOVED and closed; while it moves: RATE_LIMITED.
                svc.cells.admit_user(caller.user_id)
                # Every frame counts, whatever it is (docs/protocol.md §3).
                svc.rate_limiter.take_frame(caller.user_id, caller.connection_id)
                document = load_json(event.get("body"))
                # A message of several frames reaches us whole (up to 128 KB): over one
                # frame's 32 KB it is TOO_LARGE (docs/protocol.md §3), with its ref.
                check_frame_size(event["body"])
                frame: Any = model.read(document) if model else document
                if model is not None:
                    # Every well-formed frame counts, refused later or not: a flood of
                    # frames that fail (unknown users, say) costs us all the same.
                    svc.rate_limiter.take(caller.user_id, model.ACTION)
                return reply(answer(frame, caller, svc))
            except SideFenced as fenced:
                if caller is None:  # only admit() fences, and it runs once the caller is known
                    count_refusal(ErrorCode.MOVED)
                    return reply(ErrorFrame(code=ErrorCode.MOVED, message=str(fenced), ref=None))
                return moved_away(caller, svc, reference_of(_document_or_none(event)))
            except SidePromoting:
                return failed("this side of the cell is starting, try again", document)
            except Exception as error:
                refusal = as_refusal(error)
                if refusal is not None:
                    if refusal is error and caller is not None and too_many_refused(caller):
                        return reply(None)  # closed, after an error frame saying why
                    if document is None:  # refused before it was read: name it still
                        document = _document_or_none(event)
                    return reply(refused(refusal, reference_of(document)))
                logger.exception("unexpected failure")
                return failed("internal error, try again", document)

        return lambda_entry(handler)

    return decorate


def lifecycle_route(
    act: Callable[[Caller, dict[str, Any], Services], None],
) -> LambdaHandler:
    """$connect / $disconnect: do the work, answer 200; 500 (logged) if it failed."""

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            svc = services()
            caller = caller_of(event, svc)
            logger.thread_safe_append_keys(user=caller.user_id)
            act(caller, event, svc)
            return {"statusCode": 200}
        except Exception:
            logger.exception("unexpected failure")
            count_refusal(ErrorCode.INTERNAL)
            return {"statusCode": 500}

    return lambda_entry(handler)
