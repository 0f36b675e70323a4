"""The JavaScript SDK's own tests (Node's test runner), and what keeps it in step with Python.

`node --test web/test/*.test.mjs` runs the SDK's unit tests: the shared crypto vectors,
its schema checker against ajv, and the client against a fake server. They are part of the
README's test command through this module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from messenger_protocol import limits

REPO = Path(__file__).resolve().parents[2]
NODE = shutil.which("node") or "node"
NODE_TESTS = sorted((REPO / "web" / "test").glob("*.test.mjs"))

pytestmark = pytest.mark.unit


def node(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NODE, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_given_the_sdk_unit_tests_when_node_runs_them_then_every_one_passes():
    # Given the SDK's test files
    assert len(NODE_TESTS) >= 4

    # When Node's test runner runs them
    result = node("--test", *map(str, NODE_TESTS))

    # Then all pass, and there are as many as we wrote
    summary = dict(
        re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M)
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert summary["fail"] == summary["cancelled"] == summary["skipped"] == "0", summary
    assert int(summary["pass"]) == int(summary["tests"]) >= 28, summary


def test_given_docs_asyncapi_yaml_then_the_sdks_copy_of_the_schemas_is_not_stale():
    result = node("web/build.mjs", "--check")
    assert result.returncode == 0, result.stderr


def test_given_the_protocol_limits_then_the_js_sdk_has_the_same_numbers():
    # Given the limits the JS SDK uses
    result = node(
        "--input-type=module",
        "-e",
        "import * as limits from './web/sdk/limits.js';"
        "console.log(JSON.stringify(Object.fromEntries(Object.entries(limits)"
        ".map(([name, value]) => [name, value instanceof RegExp ? value.source : value]))))",
    )
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout)

    # Then each one the Python protocol package also has is equal
    shared = {name: value for name, value in js.items() if hasattr(limits, name)}
    assert len(shared) >= 12
    for name, value in shared.items():
        python = getattr(limits, name)
        if name.endswith("_PATTERN"):
            continue  # compared below: the user id rule is v1.1's, stricter than v1's
        assert value == python, name
    assert js["MESSAGE_ID_PATTERN"] == limits.MESSAGE_ID_PATTERN
    assert js["CONNECT_NONCE_PATTERN"] == limits.CONNECT_NONCE_PATTERN
    # docs/protocol.md §1 v1.1: lowercase, a letter or a digit first (the Python side may be v1).
    assert js["USER_ID_PATTERN"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
