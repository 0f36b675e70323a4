"""The local stack as the benchmarks run it: in this process, on free loopback ports.

What the functions print (EMF metrics, logs) goes to a file, as `messenger local` does
with it, so that the console shows the benchmark's report alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, TextIO

from messenger.contract import Env
from messenger_local import LocalStack

# High enough that no sender of a benchmark meets the limiter (120/min, burst 60 by
# default): the figures measure the stack. A test may set a low one to see the
# RATE_LIMITED path taken under load.
RATE_PER_MINUTE = 600_000
RATE_BURST = 10_000


# Benchmarks register thousands of users from loopback.
REGISTRATIONS_PER_HOUR = 1_000_000


def loopback_stack(
    *, rate_per_minute: int = RATE_PER_MINUTE, rate_burst: int = RATE_BURST, **options: Any
) -> LocalStack:
    """A LocalStack on free loopback ports, with this per-sender rate limit in force;
    `options` go to LocalStack (workers, aws, cells...)."""
    environment = {
        Env.RATE_LIMIT_PER_MINUTE.value: str(rate_per_minute),
        Env.RATE_LIMIT_BURST.value: str(rate_burst),
        # Every simulated user registers from this one address.
        Env.REGISTRATIONS_PER_IP_PER_HOUR.value: str(REGISTRATIONS_PER_HOUR),
    }
    return LocalStack(host="127.0.0.1", port=0, aws_port=0, environment=environment, **options)


@contextlib.contextmanager
def functions_output_to_file(bench_name: str) -> Iterator[tuple[TextIO, str]]:
    """Send what the functions print to a file; yields the console to print the report
    on, and the file's path."""
    path = os.path.join(tempfile.gettempdir(), f"messenger-bench-{bench_name}-functions.log")
    console = sys.stdout
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        sys.stdout = log_file
        try:
            yield console, path
        finally:
            sys.stdout = console
