"""Settings from the environment: defaults, parsing, and a loud failure on nonsense."""

from __future__ import annotations

import pytest

from messenger.config import (
    DEFAULT_CELL_ID,
    DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    CellSettings,
    settings_from,
)
from messenger.contract import (
    DEFAULT_MESSAGE_TTL_SECONDS,
    DEFAULT_RATE_LIMITS,
    DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR,
    GATEWAY_ROUTES_BY_KEY,
    PRESENCE_WORKER,
    Env,
    RateLimit,
)
from messenger.logic.cells import Cells
from messenger_protocol.names import Action
from tests.support.v12_pending import ACTIONS_NOT_ROUTED_YET

pytestmark = pytest.mark.unit

TABLES = {
    Env.USERS_TABLE.value: "app-users",
    Env.QUEUE_TABLE.value: "app-queue",
    Env.LIMITS_TABLE.value: "app-limits",
}


def test_defaults_apply_when_only_the_tables_are_set() -> None:
    settings = settings_from(TABLES)
    assert (settings.users_table, settings.queue_table, settings.limits_table) == (
        "app-users",
        "app-queue",
        "app-limits",
    )
    assert settings.message_ttl_seconds == DEFAULT_MESSAGE_TTL_SECONDS
    assert settings.rate_limit_per_minute == DEFAULT_RATE_LIMIT_PER_MINUTE
    assert settings.rate_limit_burst == DEFAULT_RATE_LIMIT_BURST
    assert settings.connections_endpoint is None and dict(settings.push_apps) == {}
    assert settings.registrations_per_ip_per_hour == DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR
    assert settings.presence_function == PRESENCE_WORKER.function_name
    assert settings.cell_epoch == "local"
    # The v1.1 connect signature stays accepted; no endpoint beyond the event's own
    assert settings.accept_v11_connect is True and settings.connect_endpoints == ()


def test_a_deployment_that_names_no_cell_is_one_cell_with_every_shard_and_no_peers() -> None:
    # Given a single deployment's environment, with no CELL_ID
    cell = settings_from(TABLES).cell
    # Then it is the default cell, home to every user, with no peer to call
    assert cell == CellSettings.single() and cell.cell_id == DEFAULT_CELL_ID
    assert cell.shard_map is not None and cell.shard_map.cells() == [DEFAULT_CELL_ID]
    assert {cell.shard_map.home_of(f"user{i}") for i in range(100)} == {DEFAULT_CELL_ID}
    assert Cells(cell).peers == () and not cell.mesh.name
    # And a cell's variables without CELL_ID change nothing
    assert settings_from(TABLES | {Env.MESH_BUCKET.value: "bucket"}).cell == cell


def test_every_action_has_a_rate_limit_and_send_message_s_is_configurable() -> None:
    settings = settings_from(TABLES | {Env.RATE_LIMIT_BURST.value: "7"})
    # A frame API Gateway answers itself (`ping`) runs no function, so has no limit.
    routed = [
        action
        for action in Action
        if action not in ACTIONS_NOT_ROUTED_YET and action.value not in GATEWAY_ROUTES_BY_KEY
    ]
    assert {action: settings.rate_limit(action) for action in routed} == DEFAULT_RATE_LIMITS | {
        Action.SEND_MESSAGE: RateLimit(burst=7, per_minute=DEFAULT_RATE_LIMIT_PER_MINUTE)
    }


def test_the_cell_epoch_is_the_region_unless_the_deployment_names_it() -> None:
    # Given a function on Lambda, which sets AWS_REGION
    on_lambda = TABLES | {"AWS_REGION": "eu-west-1"}
    # Then the cell's generation is named after its region, until a deployment names it
    assert settings_from(on_lambda).cell_epoch == "eu-west-1"
    assert settings_from(on_lambda | {Env.CELL_EPOCH.value: "c0-2"}).cell_epoch == "c0-2"


def test_every_variable_is_read() -> None:
    settings = settings_from(
        TABLES
        | {
            Env.MESSAGE_TTL_SECONDS.value: "3600",
            Env.CONNECTIONS_ENDPOINT.value: "http://127.0.0.1:8080",
            Env.RATE_LIMIT_PER_MINUTE.value: "30",
            Env.RATE_LIMIT_BURST.value: " 5 ",
            Env.PUSH_MIN_INTERVAL_SECONDS.value: "0",
            Env.PUSH_APP_GCM.value: "arn:aws:sns:us-east-1:123456789012:app/GCM/m",
            Env.REGISTRATIONS_PER_IP_PER_HOUR.value: "4",
            Env.PRESENCE_FUNCTION.value: "arn:aws:lambda:us-east-1:123456789012:function:P:live",
            Env.CONNECT_ENDPOINTS.value: "WSS://Chat.Example.com:443/ , ws://127.0.0.1:8080/c0",
            Env.ACCEPT_V11_CONNECT.value: "false",
        }
    )
    assert settings.message_ttl_seconds == 3600
    assert settings.connections_endpoint == "http://127.0.0.1:8080"
    assert (settings.rate_limit_per_minute, settings.rate_limit_burst) == (30, 5)
    assert settings.push_min_interval_seconds == 0
    assert dict(settings.push_apps) == {"GCM": "arn:aws:sns:us-east-1:123456789012:app/GCM/m"}
    assert settings.registrations_per_ip_per_hour == 4
    assert settings.presence_function == "arn:aws:lambda:us-east-1:123456789012:function:P:live"
    # Endpoints in the canonical form `aud` is compared in (docs/protocol.md §1)
    assert settings.connect_endpoints == ("wss://chat.example.com", "ws://127.0.0.1:8080/c0")
    assert settings.accept_v11_connect is False


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (Env.RATE_LIMIT_PER_MINUTE.value, "lots", "RATE_LIMIT_PER_MINUTE must be an integer"),
        (Env.RATE_LIMIT_BURST.value, "0", "rate_limit_burst must be an integer of at least 1"),
        (Env.MESSAGE_TTL_SECONDS.value, "-5", "message_ttl_seconds"),
        (Env.PUSH_MIN_INTERVAL_SECONDS.value, "1.5", "PUSH_MIN_INTERVAL_SECONDS"),
        (Env.USERS_TABLE.value, "", "users_table must name a DynamoDB table"),
        (Env.LIMITS_TABLE.value, "", "limits_table must name a DynamoDB table"),
        (Env.REGISTRATIONS_PER_IP_PER_HOUR.value, "0", "registrations_per_ip_per_hour"),
        (Env.CELL_EPOCH.value, "x" * 129, "cell_epoch must be 1-128 printable characters"),
        (Env.CELL_EPOCH.value, "a\nb", "cell_epoch must be 1-128 printable characters"),
        (Env.CONNECT_ENDPOINTS.value, "https://chat.example.com", "CONNECT_ENDPOINTS"),
        (Env.ACCEPT_V11_CONNECT.value, "maybe", "ACCEPT_V11_CONNECT must be true or false"),
    ],
)
def test_nonsense_fails_loudly_and_names_the_setting(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        settings_from(TABLES | {name: value})
