"""The events the emulator (and so every test) builds have exactly the shape API Gateway
sends: powertools' parser models accept them."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from messenger_local.events import connect_event, disconnect_event, message_event, new_id
from tests.support.harness import API, allowed, handshake

pytestmark = pytest.mark.unit

CONNECTION = handshake("L0SM9cOFvHcCIhw=", {"userId": "alice"}, 1_764_190_000_000)


def test_connect_event_matches_powertools_model() -> None:
    event = connect_event(API, CONNECTION, allowed("alice"), new_id())
    parsed = APIGatewayWebSocketConnectEventModel.model_validate(event)
    assert parsed.request_context.route_key == "$connect"


def test_disconnect_event_matches_powertools_model() -> None:
    event = disconnect_event(API, CONNECTION, allowed("alice"), 1000, "Client-side close", new_id())
    parsed = APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert parsed.request_context.disconnect_status_code == 1000


def test_message_event_matches_powertools_model() -> None:
    event = message_event(
        API, CONNECTION, allowed("alice"), "ping", '{"action":"ping"}', new_id(), new_id()
    )
    parsed = APIGatewayWebSocketMessageEventModel.model_validate(event)
    assert parsed.request_context.event_type == "MESSAGE"
    assert parsed.body == '{"action":"ping"}'
