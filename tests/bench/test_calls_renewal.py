"""`bench calls` prices a reconnect as the SDK makes it every 2 hours (make-before-break,
issue 24): a user who never goes offline costs no presence function, where a connect of
the user's only connection does (the fan-out to watchers, docs/protocol.md §2)."""

from __future__ import annotations

import pytest

from tests.support.harness import harness

pytestmark = pytest.mark.integration


def test_a_make_before_break_renewal_invokes_no_presence_function(monkeypatch) -> None:
    # bench.calls turns powertools' metrics off for its process when imported (setdefault):
    # set it here first, so that it stays off for this test only
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from bench.calls import CallCounter, connect_known, instrument, renew_connection

    with harness() as h:
        counter = CallCounter()
        instrument(h, counter)
        # When a user's only connection opens, the presence function is told
        assert connect_known(h, counter)["lambda.Invoke"] == 1
        # And when a second opens and the first then closes, it is not, either time
        renewal = renew_connection(h, counter)
    assert renewal["lambda.Invoke"] == 0, renewal
    # And the renewal is a handshake and a close: no write beyond theirs
    assert renewal["dynamodb.PutItem"] == 1 and renewal["dynamodb.DeleteItem"] == 1, renewal
