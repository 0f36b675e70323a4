"""The benchmarks stand on the product's packages, never on the tests, and hold no copy
of the protocol: frames come from messenger_protocol, NaCl from the SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parents[2] / "bench"


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, at any depth (functions included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
    return modules


def frame_literals(source: str) -> list[int]:
    """Lines where a dict literal has an "action" key: a client frame built by hand."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Dict)
        and any(isinstance(key, ast.Constant) and key.value == "action" for key in node.keys)
    ]


def bench_sources() -> dict[str, str]:
    return {
        str(path.relative_to(BENCH.parent)): path.read_text()
        for path in sorted(BENCH.rglob("*.py"))
    }


def test_the_scan_sees_every_benchmark() -> None:
    # Given the benchmarks `./dev bench` runs
    # When the scan lists the files of bench/
    files = set(bench_sources())
    # Then each benchmark is among them, as a module or as a package
    for name in BENCHMARKS:
        assert f"bench/{name}.py" in files or f"bench/{name}/__init__.py" in files, name


def test_the_scan_finds_an_import_of_tests_wherever_it_is() -> None:
    # Given sources importing the tests' support code in each way Python allows
    sources = [
        "from tests.support.harness import harness",
        "import tests.support.identities",
        "def f():\n    from tests import support\n",
    ]
    # Then the scan finds every one of them
    for source in sources:
        assert any(m == "tests" or m.startswith("tests.") for m in imported_modules(source))
    assert frame_literals('frame = {"action": "sync"}') == [1]


def test_no_benchmark_imports_the_tests() -> None:
    # Given every module of bench/
    # When their imports are read
    offenders = {
        path: sorted(m for m in imported_modules(source) if m == "tests" or m.startswith("tests."))
        for path, source in bench_sources().items()
    }
    # Then none imports the tests
    assert {path: found for path, found in offenders.items() if found} == {}


def test_no_benchmark_holds_a_copy_of_the_protocol() -> None:
    # Given every module of bench/
    sources = bench_sources()
    # Then no frame is built as a dict literal (messenger_protocol.frames builds them)
    literals = {path: frame_literals(source) for path, source in sources.items()}
    assert {path: lines for path, lines in literals.items() if lines} == {}
    # And no benchmark seals or signs with NaCl itself (the SDK and the protocol do)
    nacl = {
        path: sorted(m for m in imported_modules(source) if m.split(".")[0] == "nacl")
        for path, source in sources.items()
    }
    assert {path: found for path, found in nacl.items() if found} == {}
