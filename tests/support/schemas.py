"""The frames' JSON Schemas as published in docs/asyncapi.yaml, for checking real frames.

Every frame the functions post or answer with in the tests (the moto harness and the
WebSocket client both call `check_server_frame`) is validated against the committed
document, so a frame that drifts from the published contract fails the test that
produced it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from messenger_protocol.frames import V12_SERVER_FIELDS
from messenger_protocol.names import ErrorCode, FrameType

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# Frames API Gateway itself sends (no `type`): "Internal server error", "Forbidden"...
GATEWAY_FIELDS = {"message", "connectionId", "requestId"}


@cache
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    return document


@cache
def validator(message: str) -> Draft7Validator:
    """The validator of a message of the document, e.g. "server.ack" or "client.sync"."""
    messages = asyncapi()["components"]["messages"]
    if message not in messages:
        raise AssertionError(f"{message} is not a message of {ASYNCAPI.name}")
    schema_name = messages[message]["payload"]["$ref"].rsplit("/", 1)[-1]
    return Draft7Validator(asyncapi()["components"]["schemas"][schema_name])


def errors_of(message: str, frame: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(frame)'}: {error.message}"
        for error in validator(message).iter_errors(frame)
    ]


def check_server_frame(frame: Any) -> None:
    """Assert that a frame from the server is valid against its published schema."""
    if isinstance(frame, dict) and "type" not in frame and set(frame) <= GATEWAY_FIELDS:
        return  # API Gateway's own frame, not the protocol's
    kind = frame.get("type") if isinstance(frame, dict) else None
    problems = errors_of(f"server.{kind}", frame)
    assert not problems, f"server frame breaks docs/asyncapi.yaml: {problems}\n{json.dumps(frame)}"
    missing = missing_v12_fields(frame)
    assert not missing, f"server frame lacks the v1.2 fields {missing}\n{json.dumps(frame)}"


def missing_v12_fields(frame: dict[str, Any]) -> list[str]:
    """The fields v1.2 has the server send (`epoch`, `dv`, `retryAfter`) that a frame of
    ours lacks. The readers and the published schemas take them as optional, so that a
    v1.2 client still reads a v1.1 server (frames.REQUIRE_V12_SERVER_FIELDS); our own
    server always sends them, and every frame the tests see is held to that here."""
    kind = frame.get("type")
    if kind == FrameType.ERROR and frame.get("code") not in (
        ErrorCode.RATE_LIMITED,
        ErrorCode.QUEUE_FULL,
    ):
        return []
    if kind == FrameType.PONG:
        return []  # answered by API Gateway itself (a MOCK route), not by the functions
    return [name for name in V12_SERVER_FIELDS.get(FrameType(str(kind)), ()) if name not in frame]


def check_client_frame(frame: Any) -> None:
    """Assert that a frame a client sends is valid against its published schema."""
    action = frame.get("action") if isinstance(frame, dict) else None
    problems = errors_of(f"client.{action}", frame)
    assert not problems, f"client frame breaks docs/asyncapi.yaml: {problems}\n{json.dumps(frame)}"
