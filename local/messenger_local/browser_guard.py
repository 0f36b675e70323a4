"""What a web page cannot make the local stack do (issue 21, docs/availability.md "Local").

While `messenger local` runs, any page the developer visits can send requests to
127.0.0.1: a cross-origin `fetch(url, {method: "POST", mode: "no-cors"})` reaches the
server with the page's `Origin`, and a DNS-rebound name reaches it with a foreign `Host`.
Two kinds of endpoint are exposed, and each refuses what only a browser would send:

- the control endpoints (`/_local/...` on the stack's port, `/moto-api/...` on moto's):
  only with the header `X-Messenger-Local: 1`, which a page cannot add cross-origin
  without a CORS preflight (never answered here), and a loopback `Host` (127.0.0.1,
  localhost, [::1], with any port), which a rebound name does not carry;
- the emulated AWS APIs (Lambda's Invoke API and each stage's `@connections` API on the
  stack's port, every API on moto's):
  only requests signed as boto3 signs them (an `Authorization` header of AWS Signature
  V4's shape; the local functions sign with dummy credentials, so the shape is all there
  is to check) and never one with an `Origin` header, which no SDK sends.

Anything else gets 403 with a body saying what was missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

LOCAL_HEADER = "X-Messenger-Local"
LOCAL_HEADER_VALUE = "1"
# What every caller of a control endpoint sends (tests, bench, docs' curl examples).
LOCAL_HEADERS = {LOCAL_HEADER: LOCAL_HEADER_VALUE}
CONTROL_PREFIX = "/_local/"
MOTO_CONTROL_PREFIX = "/moto-api/"
INVOKE_PREFIX = "/2015-03-31/functions/"
CONNECTIONS_PART = "/@connections/"

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
# AWS4-HMAC-SHA256 Credential=KEY/20261206/us-east-1/lambda/aws4_request,
#   SignedHeaders=host;x-amz-date, Signature=<64 hex>
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/\s,]+/\d{8}/[^/\s,]+/[^/\s,]+/aws4_request,\s*"
    r"SignedHeaders=[a-z0-9\-;]+,\s*Signature=[0-9a-f]{64}"
)


def is_loopback_host(host: str | None) -> bool:
    """True for a `Host` header naming this machine's loopback, with or without a port."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):  # [::1] or [::1]:8080
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in LOOPBACK_NAMES


def is_sigv4(authorization: str | None) -> bool:
    """True for an `Authorization` header shaped as AWS Signature V4 signs one."""
    return authorization is not None and _SIGV4.fullmatch(authorization.strip()) is not None


def control_refusal(headers: Mapping[str, str]) -> str | None:
    """Why a request to a control endpoint is refused (None: it may pass)."""
    if headers.get(LOCAL_HEADER) != LOCAL_HEADER_VALUE:
        return f"local control endpoints need the header {LOCAL_HEADER}: {LOCAL_HEADER_VALUE}"
    if not is_loopback_host(headers.get("Host")):
        return "local control endpoints answer only a loopback Host (127.0.0.1, localhost, [::1])"
    return None


def aws_refusal(headers: Mapping[str, str]) -> str | None:
    """Why a request to an emulated AWS API is refused (None: it may pass)."""
    if "Origin" in headers:
        return "the emulated AWS APIs refuse browser requests (an Origin header)"
    if not is_sigv4(headers.get("Authorization")):
        return "the emulated AWS APIs need an AWS Signature V4 Authorization header"
    return None


def refusal_for_path(path: str, headers: Mapping[str, str]) -> str | None:
    """The stack's port: control endpoints, Lambda's Invoke API and `@connections` (IAM-
    signed on AWS too) are guarded; the WebSocket stages and the web app are not."""
    if path.startswith(CONTROL_PREFIX):
        return control_refusal(headers)
    if path.startswith(INVOKE_PREFIX) or CONNECTIONS_PART in path:
        return aws_refusal(headers)
    return None


def moto_refusal(path: str, headers: Mapping[str, str]) -> str | None:
    """moto's port: its dashboard API is a control endpoint, the rest are AWS APIs."""
    if path.startswith(MOTO_CONTROL_PREFIX):
        return control_refusal(headers)
    return aws_refusal(headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The stack's aiohttp middleware: `refusal_for_path`, answered 403."""
    reason = refusal_for_path(request.path, request.headers)
    if reason is not None:
        return web.json_response({"message": reason}, status=403)
    return await handler(request)


class GuardedWsgi:
    """moto's WSGI app behind `moto_refusal`: refused requests never reach moto."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        reason = moto_refusal(environ.get("PATH_INFO", ""), _wsgi_headers(environ))
        if reason is None:
            return self._app(environ, start_response)
        body = json.dumps({"message": reason}).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by their usual names: HTTP_X_MESSENGER_LOCAL -> X-Messenger-Local."""
    return {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
