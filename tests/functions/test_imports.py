"""What a function imports is its cold start: guard what the handlers must not pull in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from messenger.contract import AUTHORIZER, ROUTES

pytestmark = pytest.mark.unit

AUTHORIZER_MODULE = AUTHORIZER.handler.rsplit(".", 1)[0]
HANDLER_MODULES = sorted({AUTHORIZER_MODULE} | {r.handler.rsplit(".", 1)[0] for r in ROUTES})
# Libraries the deployed code does not need; each would cost every cold start.
NOT_ON_LAMBDA = {
    "pydantic",
    "moto",
    "aiohttp",
    "websockets",
    "messenger_local",
    "messenger_client",
    "requests",
    # The X-Ray SDK (maintenance since 2026-02-25): Lambda traces without it
    "aws_xray_sdk",
    "wrapt",
}
PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
)


def top_level_modules_after_importing(module: str) -> set[str]:
    env = {
        "USERS_TABLE": "t-users",
        "QUEUE_TABLE": "t-queue",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "probe",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], env=env, check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_a_handler_imports_only_what_it_needs(module: str) -> None:
    loaded = top_level_modules_after_importing(module)
    assert {"boto3", "aws_lambda_powertools", "messenger"} <= loaded  # the probe worked
    assert loaded.isdisjoint(NOT_ON_LAMBDA), loaded & NOT_ON_LAMBDA
    # Only the authorizer verifies signatures; libsodium is the others' dead weight.
    assert ("nacl" in loaded) == (module == AUTHORIZER_MODULE)
