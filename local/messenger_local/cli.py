"""`messenger local`."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("messenger local: not built yet", file=sys.stderr)
    return 1
