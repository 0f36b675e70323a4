"""Events exactly as API Gateway's WebSocket API hands them to Lambda, and a Lambda context.

One factory for every test that calls a handler directly; the shapes are checked
against powertools' APIGatewayWebSocket*EventModel parser models in the tests.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API_ID = "a1b2c3d4e5"
STAGE = "test"
REGION = "us-east-1"
ACCOUNT = "123456789012"
DOMAIN = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
ENDPOINT = f"https://{DOMAIN}/{STAGE}"


def new_connection_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(15)) + "="


def _request_id() -> str:
    return new_connection_id()


def _request_context(
    route_key: str, event_type: str, connection_id: str, connected_at: int
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": _request_id(),
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": connected_at,
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "identity": {"userAgent": "pytest", "sourceIp": "127.0.0.1"},
        "requestId": _request_id(),
        "domainName": DOMAIN,
        "connectionId": connection_id,
        "apiId": API_ID,
    }


def _authorizer_context(user_id: str) -> dict[str, Any]:
    return {"principalId": user_id, "userId": user_id, "integrationLatency": 12}


def authorizer_event(query: dict[str, str] | None, connection_id: str) -> dict[str, Any]:
    """A REQUEST authorizer event for $connect."""
    context = _request_context("$connect", "CONNECT", connection_id, int(time.time() * 1000))
    headers = {
        "Host": DOMAIN,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/$connect",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()},
        "stageVariables": {},
        "requestContext": context,
    }


def connect_event(
    user_id: str, connection_id: str, query: dict[str, str], connected_at: int | None = None
) -> dict[str, Any]:
    at = connected_at if connected_at is not None else int(time.time() * 1000)
    headers = {
        "Host": DOMAIN,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "requestContext": _request_context("$connect", "CONNECT", connection_id, at)
        | {"authorizer": _authorizer_context(user_id)},
        "isBase64Encoded": False,
    }


def disconnect_event(user_id: str, connection_id: str, connected_at: int) -> dict[str, Any]:
    headers = {"Host": DOMAIN}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": _request_context("$disconnect", "DISCONNECT", connection_id, connected_at)
        | {
            "authorizer": _authorizer_context(user_id),
            "disconnectStatusCode": 1000,
            "disconnectReason": "Client-side close frame status code",
        },
        "isBase64Encoded": False,
    }


def message_event(
    route_key: str, user_id: str, connection_id: str, body: str, connected_at: int
) -> dict[str, Any]:
    return {
        "requestContext": _request_context(route_key, "MESSAGE", connection_id, connected_at)
        | {"authorizer": _authorizer_context(user_id), "messageId": _request_id()},
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that powertools and our handlers read."""

    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/27/[$LATEST]0123456789"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000
