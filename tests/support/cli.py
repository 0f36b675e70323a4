"""Running the `messenger` command in tests: its environment, isolated from the user's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MESSENGER = str(Path(sys.executable).with_name("messenger"))


def environment(home: Path, server: str | None = None) -> dict[str, str]:
    """This process's environment without the user's messenger settings, on `home` (and
    `server`, if given: without it, give the command `--server` or `--directory`)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MESSENGER_", "XDG_"))
    }
    env["MESSENGER_HOME"] = str(home)
    if server is not None:
        env["MESSENGER_SERVER"] = server
    return env
