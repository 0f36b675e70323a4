"""Lambda's Invoke API, for the functions that invoke one another (the presence function).

POST /2015-03-31/functions/{FunctionName}/invocations, as boto3's `lambda` client sends
it when AWS_ENDPOINT_URL_LAMBDA names this server. `X-Amz-Invocation-Type: Event` is
answered 202 at once and the function runs in the background, as Lambda queues it;
`RequestResponse` (the default) waits and answers the function's result. FunctionName
may be a name or an ARN (with a qualifier); unknown ones get 404, as from Lambda. A
failed asynchronous invocation is logged and not tried again (Lambda would, twice).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from messenger_local.events import new_id
from messenger_local.gateway import Gateway, json_response
from messenger_local.invocations import Invocation
from messenger_local.lambdas import Outcome

INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"
ASYNCHRONOUS = "Event"
SYNCHRONOUS = "RequestResponse"
DRY_RUN = "DryRun"


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


async def invoke(gateway: Gateway, request: web.Request) -> web.Response:
    name = function_name_of(unquote(request.match_info["function_name"]))
    if not gateway.functions.has(name):
        return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
    try:
        event = json.loads(await request.read() or b"{}")
    except ValueError:
        return _error(400, "InvalidRequestContentException", "Could not parse request body")
    kind = request.headers.get("X-Amz-Invocation-Type", SYNCHRONOUS)
    request_id = new_id()
    if kind == DRY_RUN:
        return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
    if kind == ASYNCHRONOUS:
        gateway.spawn(_run_in_background(gateway, name, event))
        return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
    outcome = await _run(gateway, name, event)
    headers = {"x-amzn-RequestId": outcome.request_id}
    if not outcome.succeeded:
        headers["X-Amz-Function-Error"] = "Unhandled"
        failure = {"errorMessage": str(outcome.error or "Task timed out")}
        return json_response(200, failure, headers=headers)
    return json_response(200, outcome.response, headers=headers)


async def _run_in_background(gateway: Gateway, name: str, event: Any) -> None:
    await _run(gateway, name, event)


async def _run(gateway: Gateway, name: str, event: Any) -> Outcome:
    outcome = await gateway.functions.invoke(name, event)
    if outcome.timed_out:
        status, label = 504, "timed out"
    elif outcome.error is not None:
        status, label = 500, f"raised {type(outcome.error).__name__}"
    else:
        status, label = 200, "ok"
    user = event.get("userId") if isinstance(event, dict) else None
    gateway.record(
        Invocation(
            name,
            "-",
            user if isinstance(user, str) else None,
            status,
            label,
            outcome.duration_ms,
            outcome.request_id,
        )
    )
    return outcome
