"""`python -m bench [NAME ...]`: run the named benchmarks (the default set when none is named).

`python -m bench NAME --option ...` runs one benchmark with its own options (e.g.
`python -m bench load --users 100 --messages 1000`).
"""

from __future__ import annotations

import importlib
import sys

from bench.environment import use_bench_environment

BENCHMARKS = [
    "calls",
    "cost",
    "catchup",
    "coldstart",
    "latency",
    "load",
    "scale",
    "standby",
    "failover",
    "hot",
    "move",
]
# The full-size load, failover and move runs take minutes and many sockets: they run when named.
DEFAULT = ["calls", "cost", "catchup", "coldstart", "latency", "scale"]


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1].startswith("-"):
        names, options = argv[:1], argv[1:]
    else:
        names, options = argv or DEFAULT, []
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    use_bench_environment()
    status = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        status |= importlib.import_module(f"bench.{name}").main(options)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
