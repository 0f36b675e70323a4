"""The `messenger` command. `messenger local` starts the local stack (messenger_local)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "local":
        from messenger_local.cli import main as local_main

        return local_main(args[1:])
    print("usage: messenger local [--host H] [--port P] [--stage S] [--aws-port A]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
