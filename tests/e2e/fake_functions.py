"""Stand-in Lambda handlers for testing the emulator itself (not the messenger).

They record every event and context they get, and behave as the test asks through
the connect query string or the frame: allow, deny, raise, answer slowly, post to
their own connection before answering...
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3

from messenger.contract import Authorizer, Route
from messenger.wiring import services

_lock = threading.Lock()
received: list[dict[str, Any]] = []  # {"function", "event", "remaining_ms", "request_id"}


def _record(function: str, event: dict[str, Any], context: Any) -> None:
    with _lock:
        received.append(
            {
                "function": function,
                "event": event,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "request_id": context.aws_request_id,
                "function_name": context.function_name,
            }
        )


def events_of(function: str) -> list[dict[str, Any]]:
    with _lock:
        return [entry["event"] for entry in received if entry["function"] == function]


def reset() -> None:
    with _lock:
        received.clear()


def _policy(effect: str, resource: str, principal: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """?user=NAME&mode=allow|deny|unauthorized|crash|nested|other-resource"""
    _record("authorize", event, context)
    query = event["queryStringParameters"]
    mode, user = query["mode"], query["user"]
    if mode == "unauthorized":
        raise Exception("Unauthorized")  # API Gateway's convention for a 401
    if mode == "crash":
        raise RuntimeError("authorizer bug")
    if mode == "deny":
        return _policy("Deny", event["methodArn"], user)
    if mode == "other-resource":
        return _policy("Allow", event["methodArn"].replace("$connect", "other"), user)
    context_values: dict[str, Any] = {"userId": user, "tier": 3, "beta": True}
    if mode == "nested":
        context_values["nested"] = {"no": "objects"}
    # A wildcard resource, as authorizers often return.
    wildcard = event["methodArn"].rsplit("/", 2)[0] + "/*"
    return _policy("Allow", wildcard, user) | {"context": context_values}


def connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """?connectStatus=NNN makes $connect answer that statusCode."""
    _record("connect", event, context)
    status = int((event.get("queryStringParameters") or {}).get("connectStatus", "200"))
    return {"statusCode": status}


def disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("disconnect", event, context)
    return {"statusCode": 200}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers which route got the frame."""
    _record("echo", event, context)
    route = event["requestContext"]["routeKey"]
    return {"statusCode": 200, "body": json.dumps({"route": route, "body": event["body"]})}


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("boom", event, context)
    raise RuntimeError("handler bug")


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("slow", event, context)
    time.sleep(float(json.loads(event["body"])["seconds"]))
    return {"statusCode": 200, "body": '{"late":true}'}


def post_then_reply(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Posts `count` frames to its own connection, then answers: order must hold."""
    _record("post_then_reply", event, context)
    count = int(json.loads(event["body"])["count"])
    # CONNECTIONS_ENDPOINT is how the real functions find @connections locally: their
    # cell's settings, which this invocation runs in.
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=services().settings.connections_endpoint
    )
    connection_id = event["requestContext"]["connectionId"]
    for index in range(count):
        client.post_to_connection(
            ConnectionId=connection_id, Data=json.dumps({"posted": index}).encode()
        )
    return {"statusCode": 200, "body": json.dumps({"replied": count})}


_HERE = __name__
FAKE_AUTHORIZER = Authorizer(
    handler=f"{_HERE}.authorize",
    function_name="FakeAuthorizer",
    access=frozenset(),
    identity_query_params=("user", "mode"),
)
LIFECYCLE_ROUTES = (
    Route("$connect", f"{_HERE}.connect", "FakeConnect", two_way=False),
    Route("$disconnect", f"{_HERE}.disconnect", "FakeDisconnect", two_way=False),
)
FAKE_ROUTES = (
    *LIFECYCLE_ROUTES,
    Route("$default", f"{_HERE}.echo", "FakeDefault"),
    Route("echo", f"{_HERE}.echo", "FakeEcho"),
    Route("oneWay", f"{_HERE}.echo", "FakeOneWay", two_way=False),
    Route("boom", f"{_HERE}.boom", "FakeBoom"),
    Route("slow", f"{_HERE}.slow", "FakeSlow"),
    Route("postThenReply", f"{_HERE}.post_then_reply", "FakePostThenReply"),
)
