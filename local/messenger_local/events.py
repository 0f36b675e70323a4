"""Lambda events shaped exactly as API Gateway's WebSocket API builds them.

One builder per event type: the REQUEST authorizer event, CONNECT, MESSAGE and
DISCONNECT. The shapes follow what AWS sends (and what powertools' parser models
`APIGatewayWebSocket*EventModel` accept); only the addresses are local.
"""

from __future__ import annotations

import base64
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# API Gateway drops hop-by-hop headers before the integration sees the request.
_HOP_BY_HOP = {"connection", "upgrade", "keep-alive", "transfer-encoding", "te", "trailer"}
_API_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids, e.g. "L0SM9cOFvHcCIhw="."""
    while True:
        # AWS ids are base64 of 11 bytes; we skip '+' and '/' so an id never needs
        # escaping in an @connections URL.
        candidate = base64.b64encode(secrets.token_bytes(11)).decode("ascii")
        if "+" not in candidate and "/" not in candidate:
            return candidate


def new_api_id() -> str:
    """A random API id: 10 lowercase letters and digits, like "a1b2c3d4e5"."""
    return "".join(secrets.choice(_API_ID_ALPHABET) for _ in range(10))


def epoch_ms() -> int:
    """Now, in milliseconds since the epoch (connectedAt, requestTimeEpoch)."""
    return time.time_ns() // 1_000_000


def request_time(at_ms: int) -> str:
    """API Gateway's `requestTime` format: "27/Nov/2026:00:48:38 +0000"."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass(frozen=True)
class Api:
    """The WebSocket API and stage the events come from."""

    api_id: str
    stage: str
    domain_name: str  # locally "HOST:PORT", so https://{domainName}/{stage} names the emulator
    region: str
    account_id: str

    def method_arn(self, route_key: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:"
            f"{self.api_id}/{self.stage}/{route_key}"
        )


@dataclass(frozen=True)
class Handshake:
    """What API Gateway keeps from the HTTP upgrade request of a connection."""

    connection_id: str
    connected_at: int  # epoch ms
    source_ip: str
    user_agent: str | None
    headers: tuple[tuple[str, str], ...] = ()  # as received, repeated names kept
    query: tuple[tuple[str, str], ...] = ()
    port: int = 80
    scheme: str = "http"
    trace_id: str = field(default_factory=lambda: _trace_id())

    def identity(self) -> dict[str, str]:
        identity = {"sourceIp": self.source_ip}
        if self.user_agent is not None:
            identity["userAgent"] = self.user_agent
        return identity


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway's two views of repeated names: the last value, and every value."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _upgrade_headers(api: Api, handshake: Handshake) -> list[tuple[str, str]]:
    kept = [
        (name, value)
        for name, value in handshake.headers
        if name.lower() not in _HOP_BY_HOP and name.lower() != "host"
    ]
    return [
        ("Host", api.domain_name),
        *kept,
        ("X-Amzn-Trace-Id", handshake.trace_id),
        ("X-Forwarded-For", handshake.source_ip),
        ("X-Forwarded-Port", str(handshake.port)),
        ("X-Forwarded-Proto", handshake.scheme),
    ]


def _request_context(
    api: Api,
    handshake: Handshake,
    route_key: str,
    event_type: str,
    request_id: str,
    at_ms: int,
) -> dict[str, Any]:
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(at_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": handshake.connected_at,
        "requestTimeEpoch": at_ms,
        "identity": handshake.identity(),
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": handshake.connection_id,
        "apiId": api.api_id,
    }


def authorizer_context(
    principal_id: str | None, context: Mapping[str, Any], latency_ms: int
) -> dict[str, Any]:
    """What API Gateway puts in `requestContext.authorizer` of every event after an Allow:
    the principal, the authorizer's own context, and how long the authorizer took."""
    return {"principalId": principal_id, **context, "integrationLatency": latency_ms}


def authorizer_event(api: Api, handshake: Handshake, request_id: str) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends before $connect."""
    headers, multi_headers = _single_and_multi(_upgrade_headers(api, handshake))
    query, multi_query = _single_and_multi(handshake.query)
    return {
        "type": "REQUEST",
        "methodArn": api.method_arn("$connect"),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": {},
        "requestContext": _request_context(
            api, handshake, "$connect", "CONNECT", request_id, handshake.connected_at
        ),
    }


def connect_event(
    api: Api, handshake: Handshake, authorizer: dict[str, Any] | None, request_id: str
) -> dict[str, Any]:
    """The $connect event: the upgrade request's headers and query string."""
    headers, multi_headers = _single_and_multi(_upgrade_headers(api, handshake))
    context = _request_context(
        api, handshake, "$connect", "CONNECT", request_id, handshake.connected_at
    )
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if handshake.query:
        query, multi_query = _single_and_multi(handshake.query)
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = multi_query
    return event


def message_event(
    api: Api,
    handshake: Handshake,
    authorizer: dict[str, Any] | None,
    route_key: str,
    body: str,
    request_id: str,
    message_id: str,
    stage_variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A MESSAGE event: one frame from the client, routed to `route_key`, with the stage's
    variables as they are now (the directory version, `dv`, among them)."""
    context = _request_context(api, handshake, route_key, "MESSAGE", request_id, epoch_ms())
    context["messageId"] = message_id
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "requestContext": context,
        "body": body,
        "isBase64Encoded": False,
        "stageVariables": dict(stage_variables) if stage_variables else None,
    }


def disconnect_event(
    api: Api,
    handshake: Handshake,
    authorizer: dict[str, Any] | None,
    status_code: int,
    reason: str,
    request_id: str,
) -> dict[str, Any]:
    """The $disconnect event, with the close status and reason."""
    # What AWS sends on $disconnect: the request is long gone, so only these remain.
    headers = [
        ("Host", api.domain_name),
        ("x-api-key", ""),
        ("X-Forwarded-For", ""),
        ("x-restapi", ""),
    ]
    single, multi = _single_and_multi(headers)
    context = _request_context(api, handshake, "$disconnect", "DISCONNECT", request_id, epoch_ms())
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": context,
        "isBase64Encoded": False,
    }


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping gives a function: one record per
    message, as ReceiveMessage returned it (with AttributeNames All)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }
