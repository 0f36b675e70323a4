"""Running the `messenger` command in tests: its environment, isolated from the user's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MESSENGER = str(Path(sys.executable).with_name("messenger"))


def environment(home: Path, server: str) -> dict[str, str]:
    """This process's environment without the user's messenger settings, on `home`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MESSENGER_", "XDG_"))
    }
    return env | {"MESSENGER_HOME": str(home), "MESSENGER_SERVER": server}
