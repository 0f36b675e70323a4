"""Files generated from this package and committed: written when stale, or checked.

docs/asyncapi.yaml (`messenger_protocol.asyncapi`) and the JavaScript SDK's constants
(`messenger_protocol.javascript`) are generated the same way: a command writes them, and
the same command with `--check` (which a test runs) says whether a committed copy is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def command_line(
    command: str, description: str, default: Path, files: Callable[[Path], Mapping[Path, str]]
) -> Callable[[list[str] | None], int]:
    """A `main(argv)` for `python -m <command>`: `--output PATH` (where to write, `default`
    unless given) and `--check`; `files(output)` says what each file should hold."""

    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"python -m {command}", description=description)
        parser.add_argument("--output", type=Path, default=default)
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 1 if a file differs from what would be generated",
        )
        args = parser.parse_args(argv)
        return write_or_check(files(args.output), check=args.check, command=command)

    return main


def write_or_check(files: Mapping[Path, str], *, check: bool, command: str) -> int:
    """Write each file whose text differs; with `check`, write nothing and return 1 if one
    differs (naming it, and the command that writes it)."""
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if check:
        for path in stale:
            print(f"{path} is out of date: run python -m {command}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {path}")
    return 0
