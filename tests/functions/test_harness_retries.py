"""The harness's throttles (messenger_local.harness.throttle_dynamodb): botocore retries a
throttled call as many times as the functions' client settings say, with the same outcome,
and waits zero seconds between attempts (a test of a throttle does not sit out the backoff)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import botocore.endpoint
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from messenger.wiring import CLIENT_CONFIG
from tests.support.harness import TABLE_NAMES, Harness, retry_at_once

pytestmark = pytest.mark.integration

KEY = {"pk": {"S": "U#alice"}, "sk": {"S": "PROFILE"}}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every wait botocore's endpoint asks for between two attempts, in seconds."""
    asked: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", asked.append)  # type: ignore[attr-defined,unused-ignore]
    yield asked


def test_given_a_brief_throttle_then_the_call_succeeds_after_one_retry_per_failure_unwaited(
    h: Harness, waits: list[float]
) -> None:
    # Given the functions' table client throttled for its next three GetItem calls
    failures = h.throttle("GetItem", times=3)
    # When the functions' client reads
    item = h.services.dynamodb.get_item(TableName=TABLE_NAMES["Users"], Key=KEY)
    # Then it got its answer on the fourth attempt, and botocore waited zero seconds each time
    assert "Item" not in item and item["ResponseMetadata"]["RetryAttempts"] == 3
    assert len(failures) == 3
    assert waits == [0.0, 0.0, 0.0]


def test_given_a_lasting_throttle_then_the_call_fails_after_every_attempt_unwaited(
    h: Harness, waits: list[float]
) -> None:
    # Given a throttle that outlasts the retries
    failures = h.throttle("GetItem", times=100)
    # When the functions' client reads, then it gives up with the throttle, as on DynamoDB
    with pytest.raises(ClientError) as raised:
        h.services.dynamodb.get_item(TableName=TABLE_NAMES["Users"], Key=KEY)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    # After as many attempts as the functions' client config allows (1 + 4 retries)
    attempts = h.services.dynamodb.meta.config.retries["total_max_attempts"]  # type: ignore[attr-defined,unused-ignore]
    retries = CLIENT_CONFIG.retries  # type: ignore[attr-defined,unused-ignore]
    assert attempts == 5 and retries == {"total_max_attempts": 5, "mode": "standard"}
    assert len(failures) == attempts
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == attempts - 1
    assert waits == [0.0] * (attempts - 1)


def test_given_a_client_in_another_retry_mode_then_retry_at_once_refuses_it() -> None:
    legacy = boto3.client(
        "dynamodb", region_name="us-east-1", config=Config(retries={"mode": "legacy"})
    )
    with pytest.raises(ValueError, match="standard retry mode"):
        retry_at_once(legacy)
