"""The Lambda asset, built for real through CDK's local bundling (pip, no Docker)."""

from __future__ import annotations

import importlib.metadata
import io
import json
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
