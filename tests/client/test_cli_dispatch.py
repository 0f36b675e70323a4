"""The `messenger` command reaches the local stack without the client depending on it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import messenger_client

pytestmark = pytest.mark.unit

MESSENGER = str(Path(sys.executable).with_name("messenger"))
CLIENT_PACKAGE = Path(messenger_client.__file__).parent


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
    return modules


def test_no_module_of_the_client_imports_the_local_stack() -> None:
    # Given every module of messenger_client
    sources = sorted(CLIENT_PACKAGE.rglob("*.py"))
    assert CLIENT_PACKAGE / "cli.py" in sources
    # Then none imports messenger_local, anywhere in it
    offenders = {
        f"{source.name}: {module}"
        for source in sources
        for module in imported_modules(source)
        if module == "messenger_local" or module.startswith("messenger_local.")
    }
    assert offenders == set()


def test_importing_the_whole_client_loads_no_local_stack() -> None:
    # Given a fresh interpreter, When it imports every module of messenger_client
    script = (
        "import importlib, pkgutil, sys\n"
        "import messenger_client\n"
        "for module in pkgutil.walk_packages(messenger_client.__path__, 'messenger_client.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(sorted(name for name in sys.modules if name.startswith('messenger_')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    # Then the client and the protocol are loaded, and nothing of the local stack
    assert "'messenger_client.cli'" in loaded and "'messenger_protocol.frames'" in loaded
    assert "messenger_local" not in loaded


def test_messenger_local_help_runs_through_the_console_script() -> None:
    # When a person asks the installed `messenger` command for `local --help`
    ran = subprocess.run([MESSENGER, "local", "--help"], capture_output=True, text=True, timeout=60)
    # Then the local stack's own parser answers
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: messenger local")
    assert "--aws-port" in ran.stdout


def test_an_unknown_command_is_a_usage_error() -> None:
    ran = subprocess.run([MESSENGER, "nonsense"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2
    assert "invalid choice: 'nonsense'" in ran.stderr
