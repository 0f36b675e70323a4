"""The Lambda asset, built for real through CDK's local bundling (pip, no Docker)."""

from __future__ import annotations

import ast
import importlib.metadata
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest

from infra import bundling
from infra.app import build_app
from messenger.contract import AUTHORIZER, ROUTES
from tests.infra.conftest import TARGET

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == ELF_MAGIC, path
    assert header[5] == 1, f"{path} is not little-endian"  # EI_DATA: ELFDATA2LSB
    return int.from_bytes(header[18:20], "little")  # e_machine


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Given a synthesis that bundles, as `cdk deploy` does
    outdir = tmp_path_factory.mktemp("cdk-bundled")
    app = build_app({**TARGET, "env": "dev"}, outdir=str(outdir))
    app.synth()

    # Then every function's code is the one asset it built
    template = json.loads((outdir / "Messenger-dev.template.json").read_text())
    keys = {
        resource["Properties"]["Code"]["S3Key"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    (key,) = keys
    manifest = json.loads((outdir / "Messenger-dev.assets.json").read_text())
    source = manifest["files"][key.removesuffix(".zip")]["source"]
    assert source["packaging"] == "zip"
    return outdir / source["path"]


def test_given_the_asset_then_nacl_is_built_for_arm64_linux_and_lambdas_python(asset):
    (sodium,) = (asset / "nacl").glob("_sodium*.so")
    assert elf_machine(sodium) == EM_AARCH64
    for library in asset.rglob("*.so"):
        assert elf_machine(library) == EM_AARCH64, library
        if ".cpython-" in library.name:
            version = bundling.runtime_python_version().replace(".", "")
            assert f".cpython-{version}-aarch64-linux-gnu.so" in library.name, library


def test_given_the_asset_then_every_handler_module_is_there(asset):
    for handler in [AUTHORIZER.handler, *(route.handler for route in ROUTES)]:
        module = handler.rsplit(".", 1)[0]
        assert (asset / (module.replace(".", "/") + ".py")).is_file(), handler


def test_given_the_asset_then_it_holds_the_functions_and_their_dependencies_only(asset):
    # Everything at the top is our package or was installed by pip for a requirement
    owned = {package for _, package in bundling.SHIPPED_PACKAGES}
    for dist in importlib.metadata.distributions(path=[str(asset)]):
        owned |= {Path(str(file)).parts[0] for file in dist.files or []}
    assert {entry.name for entry in asset.iterdir()} <= owned

    names = {entry.name for entry in asset.iterdir()}
    # No tests, emulator, client or repository files
    assert not names & {
        "tests",
        "messenger_local",
        "messenger_client",
        "local",
        "client",
        "requirements.txt",
        "infra",
        "bin",
    }
    # The runtime's SDK stays the runtime's
    assert not names & {"boto3", "botocore", "s3transfer"}
    # The functions validate frames without pydantic: it would cost every cold start
    assert not names & {"pydantic", "pydantic_core"}
    # Nor a tracing SDK: Lambda's active tracing needs none in the function
    assert not names & {"aws_xray_sdk", "wrapt"}
    # Nothing compiled for the Python that ran pip
    assert not list(asset.rglob("__pycache__")) and not list(asset.rglob("*.pyc"))


def test_given_the_asset_then_it_is_small_enough_to_start_fast(asset):
    files = [path for path in asset.rglob("*") if path.is_file()]
    unzipped = sum(path.stat().st_size for path in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(asset))
    print(
        f"asset: {len(files)} files, {unzipped / 2**20:.1f} MiB unzipped, "
        f"{buffer.tell() / 2**20:.1f} MiB zipped"
    )
    assert unzipped < LAMBDA_UNZIPPED_LIMIT / 5


# --- the directory's asset (docs/protocol.md §6) -------------------------------------------

# What Lambda's Python runtime provides besides the standard library.
RUNTIME_MODULES = {"boto3", "botocore"}


def imported_modules(path: Path) -> set[str]:
    """Top-level modules a file imports when it runs (not those for type checkers only)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for statement in ast.walk(tree)
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING"
        for node in ast.walk(statement)
    }
    modules = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def installed_by_pip(asset: Path) -> set[str]:
    """The top-level entries of an asset that pip installed (and their distributions')."""
    entries: set[str] = set()
    for dist in importlib.metadata.distributions(path=[str(asset)]):
        entries |= {Path(str(file)).parts[0] for file in dist.files or []}
    return entries


def normalized(distribution: str) -> str:
    """A distribution's name as pip compares them: "typing_extensions" is "typing-extensions"."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def installed_distributions(asset: Path) -> set[str]:
    """The distributions pip installed into an asset, by normalized name."""
    return {
        normalized(dist.metadata["Name"])
        for dist in importlib.metadata.distributions(path=[str(asset)])
    }


# What the directory's functions import besides Python's and Lambda's own.
DIRECTORY_DEPENDENCIES = {"aws_lambda_powertools"}
# The probe's modules, which sign (pynacl): they run from the probe's asset only.
PROBE_MODULES = ("probe.py", "user_probe.py")


def test_given_the_directory_asset_then_it_is_its_package_the_protocol_and_powertools_only(
    tmp_path,
):
    # When the directory's asset is bundled (powertools installed, our packages copied)
    bundling.DirectoryLocalBundling(bundling.DIRECTORY_PACKAGES).try_bundle(str(tmp_path))

    # Then it holds the directory's package and the protocol, without bytecode, and what
    # pip installed for powertools: nothing else of the messenger's dependencies
    assert {entry.name for entry in tmp_path.iterdir()} - installed_by_pip(tmp_path) == {
        "messenger_aws",
        "messenger_directory",
        "messenger_protocol",
    }
    assert "aws-lambda-powertools" in installed_distributions(tmp_path)
    assert "pynacl" not in installed_distributions(tmp_path)
    assert not installed_distributions(tmp_path) & {
        normalized(name) for name in bundling.RUNTIME_PROVIDED
    }
    assert not list((tmp_path / "messenger_directory").rglob("__pycache__"))
    # And what its handlers run on is there, or in Lambda's runtime
    from messenger_directory.handlers import PUBLISH_ENTRY_HANDLER, PUBLISH_HANDLER

    for handler in (PUBLISH_ENTRY_HANDLER, PUBLISH_HANDLER):
        assert (tmp_path / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file()
    files = [
        # (failover.py runs from the failover's asset, the probe's modules from the
        # probe's, below; mesh.py from the Relay record writer's, with the functions'
        # package and PyNaCl)
        *(
            path
            for path in (tmp_path / "messenger_directory").glob("*.py")
            if path.name not in ("failover.py", "mesh.py", *PROBE_MODULES)
        ),
        *(tmp_path / "messenger_aws").glob("*.py"),
        tmp_path / "messenger_protocol" / "__init__.py",
        tmp_path / "messenger_protocol" / "cells.py",
    ]
    available = (
        set(sys.stdlib_module_names)
        | RUNTIME_MODULES
        | DIRECTORY_DEPENDENCIES
        | {
            "messenger_aws",
            "messenger_directory",
            "messenger_protocol",
        }
    )
    for path in files:
        assert imported_modules(path) <= available, path


def test_given_the_failover_asset_then_the_switch_runs_on_what_it_holds(tmp_path):
    # When the failover's asset is bundled (docs/protocol.md §7: the standby's Failover function)
    bundling.DirectoryLocalBundling(bundling.FAILOVER_PACKAGES).try_bundle(str(tmp_path))

    # Then it holds the directory's package, the messenger's and the protocol, no bytecode,
    # and what pip installed for powertools
    assert {entry.name for entry in tmp_path.iterdir()} - installed_by_pip(tmp_path) == {
        "messenger",
        "messenger_aws",
        "messenger_directory",
        "messenger_protocol",
    }
    assert "pynacl" not in installed_distributions(tmp_path)
    assert not list((tmp_path / "messenger").rglob("__pycache__"))
    # And the switch imports nothing the asset or Lambda's runtime lacks (of the messenger's
    # functions' dependencies, only powertools is installed there)
    from messenger_directory.failover import FAILOVER_HANDLER

    assert (tmp_path / (FAILOVER_HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file()
    files = [
        *(
            path
            for path in (tmp_path / "messenger_directory").glob("*.py")
            if path.name not in PROBE_MODULES
        ),
        tmp_path / "messenger" / "dal" / "cell_generation.py",
        tmp_path / "messenger" / "dal" / "errors.py",
        tmp_path / "messenger" / "logic" / "epoch.py",
        tmp_path / "messenger" / "logic" / "clock.py",
    ]
    available = (
        set(sys.stdlib_module_names)
        | RUNTIME_MODULES
        | DIRECTORY_DEPENDENCIES
        | {
            "messenger",
            "messenger_aws",
            "messenger_directory",
            "messenger_protocol",
        }
    )
    for path in files:
        assert imported_modules(path) <= available, path


def test_given_the_probe_asset_then_the_probe_runs_on_what_it_holds(tmp_path):
    # When the probe's asset is bundled (infra/user_probe.py: it signs its handshake)
    bundling.DirectoryLocalBundling(bundling.FAILOVER_PACKAGES, with_signing=True).try_bundle(
        str(tmp_path)
    )

    # Then it holds our three packages, powertools and pynacl (its native part for Lambda)
    assert {entry.name for entry in tmp_path.iterdir()} - installed_by_pip(tmp_path) == {
        "messenger",
        "messenger_aws",
        "messenger_directory",
        "messenger_protocol",
    }
    assert {"pynacl", "aws-lambda-powertools"} <= installed_distributions(tmp_path)
    assert not installed_distributions(tmp_path) & {
        normalized(name) for name in bundling.RUNTIME_PROVIDED
    }
    # And the probe's modules import nothing the asset or Lambda's runtime lacks
    from messenger_directory.probe import PROBE_HANDLER

    assert (tmp_path / (PROBE_HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file()
    available = (
        set(sys.stdlib_module_names)
        | RUNTIME_MODULES
        | DIRECTORY_DEPENDENCIES
        | {"nacl", "messenger_aws", "messenger_directory", "messenger_protocol"}
    )
    for name in PROBE_MODULES:
        assert imported_modules(tmp_path / "messenger_directory" / name) <= available, name
