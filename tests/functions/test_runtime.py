"""What every handler's Powertools wrapper (`lambda_entry`) does with metrics."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.handlers._runtime import count_refusal, lambda_entry
from messenger_local.events import message_event, new_id
from messenger_protocol.names import ErrorCode
from tests.support.harness import API, allowed, context_for, handshake
from tests.support.push import emitted_metrics

pytestmark = pytest.mark.unit

CONNECTION = handshake("L0SM9cOFvHcCIhw=", {"userId": "alice"}, 1_764_190_000_000)


@lambda_entry
def refuse(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    count_refusal(ErrorCode.RATE_LIMITED)
    return {"statusCode": 200}


def invoke_many(times: int) -> None:
    for _ in range(times):
        event = message_event(
            API, CONNECTION, allowed("alice"), "sync", '{"action":"sync"}', new_id(), new_id()
        )
        refuse(event, context_for("sync"))  # type: ignore[arg-type]


def test_each_invocation_publishes_its_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    invoke_many(3)
    assert sum(emitted_metrics(capsys.readouterr().out).values()) == 3


def test_disabled_metrics_are_dropped_not_kept_until_powertools_prints_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given metrics disabled (the local stack, the benchmarks)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    capsys.readouterr()
    # When more invocations than powertools keeps values of one metric (100) add one each
    invoke_many(150)
    # Then nothing was printed: powertools keeps what a disabled flush does not publish,
    # and prints a metric regardless once it holds 100 values
    assert "_aws" not in capsys.readouterr().out
    # And enabled again, an invocation publishes its own metric only
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    invoke_many(1)
    assert sum(emitted_metrics(capsys.readouterr().out).values()) == 1
