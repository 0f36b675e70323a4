"""The process environment every benchmark runs in: moto's fake credentials and region,
no tracing, no metrics, quiet logs.

Set by the benchmarks' entry points (`python -m bench`, `python -m bench.NAME`), never at
import: the tests import benchmark modules, and a variable set at import would change
every test that runs after (powertools reads its switches when it flushes).
"""

from __future__ import annotations

import os

BENCH_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}


def use_bench_environment() -> None:
    """Give each variable its benchmark value, unless the caller set it already."""
    for name, value in BENCH_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
