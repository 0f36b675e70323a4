"""`messenger local` in a subprocess, as a person runs it, for the tests that need one.

    async with messenger_local(tmp_path / "functions.log", "--state", str(state)) as command:
        await command.read_until("Ctrl-C stops it.")

Each run gets free ports (`--port`, `--aws-port`, unless given) and is killed at the end
of the block if still running.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MESSENGER = Path(sys.executable).parent / "messenger"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunningCommand:
    """`messenger local` in a subprocess, with its console output collected."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []

    async def read_until(self, text: str, timeout: float = 30.0) -> str:
        """Read console lines until one contains `text`; that line."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"exited before {text!r}: {self.lines}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if text in line:
                    return line

    async def follow(self) -> None:
        """Keep reading console lines into `lines` until the command exits (a task)."""
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    async def rest(self) -> list[str]:
        assert self.process.stdout is not None
        self.lines += (await self.process.stdout.read()).decode().splitlines()
        return self.lines


@asynccontextmanager
async def messenger_local(
    function_log: Path, *options: str, default_state: bool = False
) -> AsyncIterator[RunningCommand]:
    """`messenger local --function-log FUNCTION_LOG OPTIONS...` until the block ends.

    Its state goes next to FUNCTION_LOG unless OPTIONS say where (or there is none, with
    standbys), or `default_state`: never into the project's default folder otherwise."""
    if not default_state and "--state" not in options and "--standby" not in options:
        options = (*options, "--state", str(function_log.parent / "local-state"))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(MESSENGER),
        "local",
        "--port",
        str(port),
        "--aws-port",
        str(free_port()),
        "--function-log",
        str(function_log),
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        yield RunningCommand(process, port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
