"""The events our tests feed the handlers have exactly the shape API Gateway sends."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from tests.support.lambda_events import connect_event, disconnect_event, message_event

pytestmark = pytest.mark.unit


def test_connect_event_matches_powertools_model() -> None:
    event = connect_event("alice", "L0SM9cOFvHcCIhw=", {"userId": "alice"})
    parsed = APIGatewayWebSocketConnectEventModel.model_validate(event)
    assert parsed.request_context.route_key == "$connect"


def test_disconnect_event_matches_powertools_model() -> None:
    event = disconnect_event("alice", "L0SM9cOFvHcCIhw=", 1_764_190_000_000)
    parsed = APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert parsed.request_context.disconnect_status_code == 1000


def test_message_event_matches_powertools_model() -> None:
    event = message_event("ping", "alice", "L0SM9cOFvHcCIhw=", '{"action":"ping"}', 0)
    parsed = APIGatewayWebSocketMessageEventModel.model_validate(event)
    assert parsed.request_context.event_type == "MESSAGE"
    assert parsed.body == '{"action":"ping"}'
