"""Lambda's Invoke API, for the functions that invoke one another (the presence function,
and with several cells each cell's Relay, which its peers invoke).

POST /2015-03-31/functions/{FunctionName}/invocations, as boto3's `lambda` client sends
it when AWS_ENDPOINT_URL_LAMBDA names this server. The name says which function of
which cell runs (`Target`): with cells, every function has a deployed name of its own
("messenger-local-c1-Relay"). `X-Amz-Invocation-Type: Event` is
answered 202 at once and the function runs in the background, as Lambda queues it;
`RequestResponse` (the default) waits and answers the function's result. FunctionName
may be a name or an ARN (with a qualifier); unknown ones get 404, as from Lambda. A
failed asynchronous invocation is logged and not tried again (Lambda would, twice).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from messenger_local.events import new_id
from messenger_local.gateway import Gateway, json_response
from messenger_local.invocations import Invocation
from messenger_local.lambdas import Functions, Outcome

INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"
ASYNCHRONOUS = "Event"
SYNCHRONOUS = "RequestResponse"
DRY_RUN = "DryRun"


@dataclass(frozen=True)
class Target:
    """One function as Invoke finds it: its cell's gateway (whose background work and
    records the invocation joins), the Functions that hold it, its name there."""

    gateway: Gateway
    functions: Functions
    function_name: str


# A deployed function name -> its Target, None for an unknown function.
Resolve = Callable[[str], Target | None]


def function_name_of(name_or_arn: str) -> str:
    """arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] -> NAME; a name as it is."""
    parts = name_or_arn.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "function":
        return parts[6]
    return name_or_arn


def _error(status: int, error_type: str, message: str) -> web.Response:
    return json_response(
        status, {"Type": "User", "message": message}, headers={"x-amzn-ErrorType": error_type}
    )


async def invoke(resolve: Resolve, request: web.Request) -> web.Response:
    name = function_name_of(unquote(request.match_info["function_name"]))
    target = resolve(name)
    if target is None:
        return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
    if target.gateway.out_of_service:
        return _region_lost(name)
    try:
        event = json.loads(await request.read() or b"{}")
    except ValueError:
        return _error(400, "InvalidRequestContentException", "Could not parse request body")
    kind = request.headers.get("X-Amz-Invocation-Type", SYNCHRONOUS)
    request_id = new_id()
    if kind == DRY_RUN:
        return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
    if kind == ASYNCHRONOUS:
        target.gateway.spawn(_run_in_background(target, event))
        return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
    outcome = await run(target, event)
    if target.gateway.out_of_service:
        # The region was lost while the function ran: its answer never comes out.
        return _region_lost(name)
    headers = {"x-amzn-RequestId": outcome.request_id}
    if not outcome.succeeded:
        headers["X-Amz-Function-Error"] = "Unhandled"
        failure = {"errorMessage": str(outcome.error or "Task timed out")}
        return json_response(200, failure, headers=headers)
    return json_response(200, outcome.response, headers=headers)


def _region_lost(name: str) -> web.Response:
    """What a caller meets when the function's region is gone (a local failover): a 5xx,
    which botocore retries before the caller gives up (the Relay's caller then tries the
    cell's standby)."""
    return _error(503, "ServiceException", f"{name}: the region is unavailable")


async def _run_in_background(target: Target, event: Any) -> None:
    await run(target, event)


async def run(target: Target, event: Any) -> Outcome:
    """Run the function and record the invocation in its gateway's log, as Lambda runs an
    asynchronous Invoke (or an event source's batch, messenger_local.settle_queue)."""
    outcome = await target.functions.invoke(target.function_name, event)
    if outcome.timed_out:
        status, label = 504, "timed out"
    elif outcome.error is not None:
        status, label = 500, f"raised {type(outcome.error).__name__}"
    else:
        status, label = 200, _answer_label(outcome.response)
    user = event.get("userId") if isinstance(event, dict) else None
    if isinstance(event, dict) and isinstance(event.get("op"), str):
        label = f"{label} ({event['op']})"  # a Relay request: which operation
    target.gateway.record(
        Invocation(
            target.function_name,
            "-",
            user if isinstance(user, str) else None,
            status,
            label,
            outcome.duration_ms,
            outcome.request_id,
        )
    )
    return outcome


def _answer_label(response: Any) -> str:
    """'ok', or 'error CODE' for an answer that carries one (the Relay's refusals)."""
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict):
        return f"error {error.get('code', '?')}"
    return "ok"
