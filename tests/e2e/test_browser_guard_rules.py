"""messenger_local.browser_guard's rules, header by header (the stack's refusals over HTTP
are tests/e2e/test_browser_guard.py's)."""

from __future__ import annotations

import pytest

from messenger_local.browser_guard import (
    LOCAL_HEADERS,
    aws_refusal,
    control_refusal,
    is_loopback_host,
    is_sigv4,
    moto_refusal,
    refusal_for_path,
)

pytestmark = pytest.mark.unit

SIGNED = (
    "AWS4-HMAC-SHA256 Credential=testing/20261206/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "a1" * 32
)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]", "[::1]:8080"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "10.0.0.1:8080",
        "localhost.evil.example:8080",
        "[::2]:8080",
        "0.0.0.0:8080",
    ],
)
def test_other_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_sigv4_shape() -> None:
    assert is_sigv4(SIGNED)
    assert not is_sigv4(None)
    assert not is_sigv4("Bearer abc")
    assert not is_sigv4("AWS4-HMAC-SHA256 Credential=x")
    assert not is_sigv4(SIGNED.replace("a1" * 32, "zz" * 32))


def test_control_endpoints_need_the_header_and_a_loopback_host() -> None:
    assert control_refusal({**LOCAL_HEADERS, "Host": "127.0.0.1:8080"}) is None
    assert control_refusal({"Host": "127.0.0.1:8080"}) is not None
    assert control_refusal({"X-Messenger-Local": "yes", "Host": "127.0.0.1:8080"}) is not None
    assert control_refusal({**LOCAL_HEADERS, "Host": "evil.example:8080"}) is not None


def test_aws_apis_need_a_signature_and_no_origin() -> None:
    assert aws_refusal({"Authorization": SIGNED}) is None
    assert aws_refusal({}) is not None
    assert aws_refusal({"Authorization": SIGNED, "Origin": "null"}) is not None


def test_which_paths_are_guarded() -> None:
    unsigned = {"Host": "127.0.0.1:8080"}
    assert refusal_for_path("/_local/failover/c0", unsigned) is not None
    assert refusal_for_path("/2015-03-31/functions/f/invocations", unsigned) is not None
    assert refusal_for_path("/c0/@connections/abc=", unsigned) is not None
    assert refusal_for_path("/c0/@connections/abc=", {"Authorization": SIGNED}) is None
    # The WebSocket stages and the web app are not
    assert refusal_for_path("/c0", unsigned) is None
    assert refusal_for_path("/config.json", unsigned) is None
    assert moto_refusal("/moto-api/data.json", {**LOCAL_HEADERS, **unsigned}) is None
    assert moto_refusal("/", {**LOCAL_HEADERS, **unsigned}) is not None
