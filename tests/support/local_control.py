"""Requests to the local stack's control endpoints (`/_local/...`, moto's `/moto-api/`),
as the README's curl examples send them: with `X-Messenger-Local: 1`
(messenger_local.browser_guard)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from messenger_local.browser_guard import LOCAL_HEADERS


def post_local(
    url: str, headers: Mapping[str, str] = LOCAL_HEADERS, *, data: bytes = b""
) -> tuple[int, Any]:
    """POST to a control endpoint; (status, the JSON answer), errors included."""
    request = urllib.request.Request(url, method="POST", data=data, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get_local(url: str, headers: Mapping[str, str] = LOCAL_HEADERS) -> Any:
    """GET a control endpoint's JSON answer (an error status raises)."""
    request = urllib.request.Request(url, headers=dict(headers))
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
