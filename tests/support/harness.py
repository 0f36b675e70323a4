"""The real Lambda handlers on moto, as the tests drive them (messenger_local.harness).

The same harness the benchmarks use, with one addition: every frame the functions post
or answer with is checked against docs/asyncapi.yaml, so a frame that drifts from the
published contract fails the test that produced it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from messenger_local import harness as on_moto
from messenger_local.harness import (
    API,
    START_MS,
    TABLE_NAMES,
    Connection,
    Harness,
    InvokeRecorder,
    allowed,
    context_for,
    create_tables,
    function_name_in,
    handler_of,
    handshake,
    load_handler,
    retry_at_once,
    serialize_moto,
    throttle_dynamodb,
)
from tests.support.schemas import check_server_frame

__all__ = [
    "API",
    "START_MS",
    "TABLE_NAMES",
    "Connection",
    "Harness",
    "InvokeRecorder",
    "PostRecorder",
    "allowed",
    "context_for",
    "create_tables",
    "function_name_in",
    "handler_of",
    "handshake",
    "harness",
    "load_handler",
    "retry_at_once",
    "serialize_moto",
    "throttle_dynamodb",
]


class PostRecorder(on_moto.PostRecorder):
    """The harness's recorder of posted frames, checking each against docs/asyncapi.yaml
    (and, through the Harness, each frame a route answers with)."""

    def __init__(self) -> None:
        super().__init__(check_frame=check_server_frame)


@contextmanager
def harness(**settings_overrides: Any) -> Iterator[Harness]:
    """A Harness inside moto's mock_aws, checking every frame; the functions use it until
    the block ends."""
    with on_moto.harness(check_frame=check_server_frame, **settings_overrides) as running:
        yield running
