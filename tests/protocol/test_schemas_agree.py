"""The published schemas and the readers agree, on any document near a valid one.

For documents made by breaking valid frames at random (a field dropped, a field given
another value, a field added): whatever the reader accepts, the schema of
docs/asyncapi.yaml accepts; whatever the schema accepts, the reader accepts too, unless
the reader's refusal is one of the rules a JSON Schema cannot state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_protocol import frames
from messenger_protocol.errors import ProtocolError
from tests.protocol.test_frames import (
    CLIENT_EXAMPLES,
    READER_ONLY_RULES,
    SERVER_EXAMPLES,
    copy_for,
    device,
)
from tests.support.schemas import errors_of

pytestmark = pytest.mark.unit

EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    *((f"client.{document['action']}", document) for document in CLIENT_EXAMPLES),
    *((f"server.{frame.KIND}", frame.to_wire()) for frame in SERVER_EXAMPLES),
]
# Every value some field of some example has: a wrong value is often another field's right one.
BORROWED = [value for _, document in EXAMPLES for value in document.values()]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**54),
    st.text(max_size=12),
    st.sampled_from(["1", "laptop", "bob", "STALE_DEVICES", "QUEUE_FULL", "contacts", "e#1"]),
)
values = st.one_of(
    scalars,
    st.sampled_from(BORROWED),
    st.lists(st.one_of(scalars, st.just(copy_for("x")), st.just(device("1"))), max_size=3),
)
names = st.sampled_from(
    sorted({name for _, document in EXAMPLES for name in document} - {"action", "type"})
)


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    message, document = draw(st.sampled_from(EXAMPLES))
    document = dict(document)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        change = draw(st.sampled_from(["drop", "set", "add"]))
        keys = [key for key in document if key not in ("action", "type")]
        if change == "drop" and keys:
            del document[draw(st.sampled_from(keys))]
        elif change == "set" and keys:
            document[draw(st.sampled_from(keys))] = draw(values)
        else:
            document[draw(names)] = draw(values)
    return message, document


def _has_float(value: Any) -> bool:
    """Whether a float is inside: JSON Schema takes 2.0 as an integer, JSON readers do not."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_valid())
def test_the_reader_and_the_schema_agree_near_every_frame(case: tuple[str, dict[str, Any]]) -> None:
    message, document = case
    side, kind = message.split(".")
    table: dict[Any, Any] = frames.CLIENT_FRAMES if side == "client" else frames.SERVER_FRAMES
    try:
        table[kind].read(document)
    except ProtocolError as refused:
        refusal: str | None = refused.message
    else:
        refusal = None
    problems = errors_of(message, document)
    if refusal is None:
        # Whatever the reader accepts, the schema accepts
        assert problems == [], (document, problems)
    elif not problems:
        # The schema accepts what the reader refuses only for rules it cannot state
        # (and Python's `re`, unlike JSON Schema's ECMA regexes, lets `$` match before "\n")
        unstated = any(rule in refusal for rule in READER_ONLY_RULES)
        newline = "\\n" in json.dumps(document)
        short_base64 = "base64url" in refusal  # a length no byte string encodes to
        assert unstated or newline or short_base64 or _has_float(document), (document, refusal)
