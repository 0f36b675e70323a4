"""The `messenger` console script: imports the CLI only once Ctrl-C can be answered.

Importing the SDK takes a moment; a Ctrl-C meanwhile (or while a subcommand such as
`messenger local` loads) ends with exit code 130 and one line, never a stack trace.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main() -> int:
    try:
        from messenger_client.cli import main as run_cli

        return run_cli()
    except KeyboardInterrupt:
        sys.stderr.write("messenger: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        # Done: a Ctrl-C while the interpreter exits changes nothing (the exit code stays
        # the command's, never a death by SIGINT).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
