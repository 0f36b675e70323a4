"""What every function in this process shares, whichever stack runs it: powertools.

powertools reads its switches from the process environment only, and keeps one metric
set per process: with the functions of every stack in one process, concurrent flushes
would empty each other's sets and fail invocations that on Lambda (one invocation per
container) succeed. So while any stack runs, metrics are off: POWERTOOLS_METRICS_DISABLED
is the one variable a stack puts into `os.environ`, the same for every stack, taken out
again when the last one stops. Nothing of a stack's own configuration goes there
(messenger_local.function_services).
"""

from __future__ import annotations

import os
import threading
import warnings

from messenger.contract import METRICS_NAMESPACE, SERVICE_NAME

# What Lambda would give each function of the stack (infra sets the same on AWS, but for
# metrics): described in every cell's environment.
POWERTOOLS_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
# ... and of those, what must hold for the whole process while functions run in it.
PROCESS_SWITCHES = {"POWERTOOLS_METRICS_DISABLED": "true"}

_lock = threading.Lock()
_stacks_running = 0
_found: dict[str, str | None] = {}


def functions_started() -> None:
    """A stack is about to load its functions: the process switches on, if not yet."""
    global _stacks_running
    with _lock:
        if _stacks_running == 0:
            # ... and with metrics off, powertools warns on every flush that it has none.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            for name, value in PROCESS_SWITCHES.items():
                _found[name] = os.environ.get(name)
                os.environ[name] = value
        _stacks_running += 1


def functions_stopped() -> None:
    """A stack stopped: the last one puts the switches back as it found them."""
    global _stacks_running
    with _lock:
        if _stacks_running == 0:
            return
        _stacks_running -= 1
        if _stacks_running > 0:
            return
        for name, value in _found.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _found.clear()
