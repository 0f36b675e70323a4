"""The JavaScript SDK's own tests (Node's test runner), and what keeps it in step with Python.

`node --test web/test/*.test.mjs` runs the SDK's unit tests: the shared crypto vectors,
its schema checker against ajv, and the client against a fake server. They are part of the
README's test command through this module.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from messenger_client.client import ClientSettings
from messenger_client.connection import ConnectionPolicy
from messenger_client.errors import KeyChanged
from messenger_client.keystore import PeerKeys
from messenger_protocol import client_rules, javascript, limits

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

    # When Node's test runner runs them, every file at once (they mostly wait on timers and
    # sockets; Node's default runs one file per spare core, one at a time on two cores)
    result = node("--test", f"--test-concurrency={len(NODE_TESTS)}", *map(str, NODE_TESTS))

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


def test_given_the_protocol_package_then_the_sdks_generated_constants_are_not_stale():
    # The command a developer runs, as a process (regenerate: without --check)
    result = subprocess.run(
        [sys.executable, "-m", "messenger_protocol.javascript", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def node_json(script: str) -> Any:
    """What a Node ES module script prints as JSON (run from the repository's root)."""
    result = node("--input-type=module", "-e", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def plain(value: object) -> object:
    """A Python constant as the JS side prints it: patterns as their source, sets sorted,
    enum members as their string."""
    if isinstance(value, frozenset):
        return sorted((plain(item) for item in value), key=str)
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(plain(key)): plain(item) for key, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


# Every export of a module, as JSON: a RegExp as its source, a Set as its sorted members.
EXPORTS_AS_JSON = """
const plain = (value) =>
  value instanceof RegExp ? value.source
  : value instanceof Set ? [...value].map(plain).sort()
  : Array.isArray(value) ? value.map(plain)
  : value !== null && typeof value === 'object'
    ? Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]))
  : value;
const modules = {
  limits: await import('./web/sdk/limits.generated.js'),
  client_rules: await import('./web/sdk/client-rules.generated.js'),
};
console.log(JSON.stringify(Object.fromEntries(Object.entries(modules).map(([name, module]) =>
  [name, Object.fromEntries(Object.entries(module).map(([key, value]) => [key, plain(value)]))]))));
"""


def test_given_the_protocol_package_then_the_js_sdk_has_every_limit_and_rule_and_no_other():
    # Given what the JS SDK imports
    js = node_json(EXPORTS_AS_JSON)

    # Then every constant of limits and client_rules is there under its own name, with
    # its value, and the SDK has none of its own (MAX_SUBSCRIPTIONS_PER_CONNECTION too)
    for name, module in (("limits", limits), ("client_rules", client_rules)):
        python = {key: plain(value) for key, value in javascript.constants(module)}
        assert js[name] == python, name
    assert js["limits"]["MAX_SUBSCRIPTIONS_PER_CONNECTION"] == 1000
    assert js["limits"]["USER_ID_PATTERN"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
    assert js["client_rules"]["RETRYABLE_CODES"] == ["INTERNAL", "QUEUE_FULL", "RATE_LIMITED"]


def test_given_a_retry_after_then_both_sdks_wait_at_least_that_long():
    cases = [(500, None), (500, 1200), (3000, 1200), (2000, 60_000)]
    js = node_json(
        "import { resendWait } from './web/sdk/util.js';"
        f"const cases = {json.dumps(cases)};"
        "console.log(JSON.stringify(cases.map(([b, r]) => resendWait(b, r))));"
    )
    python = [1000 * client_rules.resend_wait(b / 1000, r) for b, r in cases]
    assert js == python == [500, 1200, 3000, 60_000]


def test_given_the_same_random_draws_then_both_sdks_back_off_the_same():
    # Given a draw of 0, a quarter, a half and 1, for 40 attempts
    draws = [0.0, 0.25, 0.5, 1.0]
    js = node_json(
        "import { backoffDelay } from './web/sdk/util.js';"
        f"const draws = {json.dumps(draws)};"
        "console.log(JSON.stringify(draws.map((draw) => Array.from({ length: 40 },"
        " (_, attempt) => backoffDelay(attempt, 500, 30_000, () => draw)))));"
    )

    class Draw(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    # Then the JS SDK's delays (ms) are the Python rule's (s), attempt by attempt
    python = [
        [1000 * client_rules.backoff_delay(attempt, 0.5, 30.0, Draw(draw)) for attempt in range(40)]
        for draw in draws
    ]
    assert len(js) == len(python)
    for js_row, python_row in zip(js, python, strict=True):
        assert js_row == pytest.approx(python_row)


def test_given_the_same_random_draws_then_both_sdks_wait_as_long_to_ping():
    # Given draws across the jitter's range, at the default interval and a test's short one
    draws = [0.0, 0.25, 0.5, 0.75, 1.0]
    js = node_json(
        "import { pingDelay } from './web/sdk/util.js';"
        f"const draws = {json.dumps(draws)};"
        "console.log(JSON.stringify([540_000, 180].map((interval) =>"
        " draws.map((draw) => pingDelay(interval, () => draw)))));"
    )

    class Draw(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    # Then the JS SDK's waits (ms) are the Python rule's, 540 s ± 30 s
    python = [
        [1000 * client_rules.ping_delay(interval, Draw(draw)) for draw in draws]
        for interval in (540.0, 0.18)
    ]
    assert js[0][0] == 510_000 and js[0][-1] == 570_000
    for js_row, python_row in zip(js, python, strict=True):
        assert js_row == pytest.approx(python_row)


def test_given_the_defaults_then_both_sdks_keep_the_same_timings_as_before():
    # Given the JS SDK's default connection policy and settings (milliseconds)
    js = node_json(
        "import { DEFAULT_POLICY } from './web/sdk/connection.js';"
        "import { DEFAULT_SETTINGS } from './web/sdk/client.js';"
        "console.log(JSON.stringify({ policy: DEFAULT_POLICY, settings: DEFAULT_SETTINGS }));"
    )

    # Then they are what they were before they came from the client rules (but the ping's
    # interval: 540 s since API Gateway answers it, docs/performance.md "Keepalive")
    assert js["policy"] == {
        "openTimeout": 10_000,
        "pingInterval": 540_000,
        "pongTimeout": 30_000,
        "maxAge": 6_600_000,
        "backoffBase": 500,
        "backoffCap": 30_000,
        "refusedClosePause": 60_000,
        "tick": 1000,
    }
    assert js["settings"] == {
        "requestTimeout": 10_000,
        "resendBase": 3000,
        "resendCap": 60_000,
        "ackDelay": 50,
        "presenceVisibility": "contacts",
        "directoryJitter": 60_000,
    }
    # And the Python SDK's, in seconds, are the same
    policy, settings = ConnectionPolicy(), ClientSettings()
    assert {
        "openTimeout": policy.open_timeout,
        "pingInterval": policy.ping_interval,
        "pongTimeout": policy.pong_timeout,
        "maxAge": policy.max_age,
        "backoffBase": policy.backoff_base,
        "backoffCap": policy.backoff_cap,
        "refusedClosePause": policy.refused_close_pause,
        "tick": client_rules.KEEP_ALIVE_TICK_SECONDS,
    } == {key: value / 1000 for key, value in js["policy"].items()}
    assert {
        "requestTimeout": settings.request_timeout * 1000,
        "resendBase": settings.resend_base * 1000,
        "resendCap": settings.resend_cap * 1000,
        "ackDelay": pytest.approx(settings.ack_delay * 1000),
        "presenceVisibility": settings.presence_visibility,
        # Neither polls the directory (docs/protocol.md §6): each waits up to this for a `dv`
        "directoryJitter": settings.directory_jitter * 1000,
    } == js["settings"]


def test_given_keys_that_changed_then_both_sdks_key_changed_carry_the_same_things():
    # Given two key pairs of the shared vectors, offered for carol one after the other
    first, second = json.loads((REPO / "tests" / "vectors" / "crypto.json").read_text())[
        "identities"
    ][:2]
    js = node_json(
        "import { PeerKeys } from './web/sdk/crypto.js';"
        "import { KeyChanged } from './web/sdk/errors.js';"
        f"const [first, second] = {json.dumps([first, second])};"
        "const keys = (one) => new PeerKeys('carol', one.signKey, one.boxKey);"
        "const error = new KeyChanged('carol', keys(first), keys(second));"
        "console.log(JSON.stringify({ ...error, message: error.message }));"
    )
    pinned = PeerKeys("carol", first["signKey"], first["boxKey"])
    offered = PeerKeys("carol", second["signKey"], second["boxKey"])

    # When each SDK makes its KeyChanged
    python = KeyChanged("carol", pinned, offered)

    # Then both carry the user, both keys and both safety numbers, and name both numbers
    assert set(js) - {"name", "message"} == {
        "userId",
        "pinned",
        "offered",
        "pinnedFingerprint",
        "offeredFingerprint",
    }
    assert js["userId"] == python.user_id
    for side, keys in (("pinned", python.pinned), ("offered", python.offered)):
        wire = {"userId": keys.user_id, "signKey": keys.sign_key, "boxKey": keys.box_key}
        assert js[side] == wire
    assert js["pinnedFingerprint"] == python.pinned_fingerprint == pinned.fingerprint()
    assert js["offeredFingerprint"] == python.offered_fingerprint == offered.fingerprint()
    for text in (js["message"], str(python)):
        assert pinned.fingerprint() in text
        assert offered.fingerprint() in text
