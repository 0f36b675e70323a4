"""`python -m bench [NAME ...]`: run the named benchmarks (all when none is named)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["calls", "cost", "coldstart", "latency"]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        status |= importlib.import_module(f"bench.{name}").main([])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
