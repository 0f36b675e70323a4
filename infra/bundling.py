"""The Lambda code assets, built without Docker: the messenger's, which every function of a
cell shares, and the directory's (docs/protocol.md §6, `functions/messenger_directory`).

Lambda runs the functions on arm64 Linux and pynacl has a native part (libsodium), so
the dependencies are installed by pip for Lambda's platform and Python version
(`--platform --only-binary --python-version`) from wheels, on whatever machine runs
`cdk synth`. Then the `messenger` package and the `messenger_aws` and `messenger_protocol`
packages it imports are copied in; nothing else of the repository (tests, the local
emulator, the client) is.

Powertools is bundled (not taken from AWS's public layer): its version is the one
functions/requirements.txt pins and the tests ran, and the layer's ARN differs per
region and release. The directory's assets get powertools alone (their functions log as
the messenger's do), installed the same way, then their packages are copied in.

boto3 is not bundled: the runtime's is recent enough for every call the functions make,
and leaving it out keeps the asset small (botocore alone is 32 MB), which is less to
download on every cold start. Should a dependency pull the SDK in again (the X-Ray SDK
under powertools' tracer did, until the functions dropped it), bundling drops it, or the
bundled botocore would shadow the runtime's and run under the runtime's boto3.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
REQUIREMENTS = FUNCTIONS_DIR / "requirements.txt"
PACKAGE = "messenger"
PROTOCOL_PACKAGE = (REPO_ROOT / "protocol", "messenger_protocol")
# What every asset's functions make alike (their boto3 clients): in every asset.
AWS_PACKAGE = (FUNCTIONS_DIR, "messenger_aws")
# Our code in the asset: the functions, and the wire protocol they speak.
SHIPPED_PACKAGES = ((FUNCTIONS_DIR, PACKAGE), AWS_PACKAGE, PROTOCOL_PACKAGE)
# The directory's functions need the runtime's boto3, the protocol's `cells` and
# powertools' Logger: of the messenger's dependencies, powertools alone.
DIRECTORY_PACKAGE = "messenger_directory"
POWERTOOLS = "aws-lambda-powertools"
DIRECTORY_PACKAGES = ((FUNCTIONS_DIR, DIRECTORY_PACKAGE), AWS_PACKAGE, PROTOCOL_PACKAGE)
# The failover switch writes the directory entry and the cell's generation, whose item
# layout is the messenger's (messenger.dal.cell_generation): the three packages, copied.
FAILOVER_PACKAGES = (*DIRECTORY_PACKAGES, (FUNCTIONS_DIR, PACKAGE))

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORM = "manylinux2014_aarch64"

# boto3 and everything it depends on: all of it is on the Lambda runtime's own path.
RUNTIME_PROVIDED = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
)
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")


def runtime_python_version() -> str:
    """ "3.14" for the runtime "python3.14": what pip must resolve wheels for."""
    return RUNTIME.name.removeprefix("python")


def powertools_requirement() -> str:
    """functions/requirements.txt's powertools line: one pin for every asset."""
    for line in REQUIREMENTS.read_text().splitlines():
        if _normalized(line.strip()).startswith(POWERTOOLS):
            return line.strip()
    raise ValueError(f"{REQUIREMENTS} names no {POWERTOOLS}")


def install_dependencies(target: Path, requirements: tuple[str, ...] | None = None) -> None:
    """pip-install `requirements` (default: all of functions/requirements.txt) for Lambda's
    platform into `target`."""
    wanted = ["--requirement", str(REQUIREMENTS)] if requirements is None else list(requirements)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            *wanted,
            "--target",
            str(target),
            "--platform",
            PIP_PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            runtime_python_version(),
            "--only-binary=:all:",
            # pip would compile bytecode for the Python running it, not Lambda's.
            "--no-compile",
        ],
        check=True,
    )


def remove_distribution(target: Path, name: str) -> None:
    """Delete every file pip installed for one distribution (absent ones are fine)."""
    wanted = _normalized(name)
    found = [
        dist
        for dist in importlib.metadata.distributions(path=[str(target)])
        if _normalized(dist.metadata["Name"]) == wanted
    ]
    if not found:
        return
    for file in found[0].files or []:
        path = (target / file).resolve()
        if path.is_relative_to(target) and path.is_file():
            path.unlink()
    _prune_empty_dirs(target)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _prune_empty_dirs(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def build_asset(
    output_dir: Path,
    packages: tuple[tuple[Path, str], ...] = SHIPPED_PACKAGES,
    requirements: tuple[str, ...] | None = None,
) -> None:
    """A bundle: dependencies for Lambda (`requirements`, default all the functions'),
    minus the runtime's SDK, plus our `packages`."""
    output_dir = output_dir.resolve()
    install_dependencies(output_dir, requirements)
    for name in RUNTIME_PROVIDED:
        remove_distribution(output_dir, name)
    # Console scripts of the dependencies: nothing on Lambda runs them.
    shutil.rmtree(output_dir / "bin", ignore_errors=True)
    copy_packages(output_dir, packages)


def copy_packages(output_dir: Path, packages: tuple[tuple[Path, str], ...]) -> None:
    """Our own packages into the bundle, without bytecode."""
    for directory, package in packages:
        shutil.copytree(directory / package, output_dir / package, ignore=_NOT_SHIPPED)


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """CDK local bundling: runs in the `cdk synth` process, so Docker is never needed."""

    # jsii hands the BundlingOptions over as one positional argument; none matter here.
    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        print(f"Bundling {PACKAGE} for {RUNTIME.name} on {PIP_PLATFORM}", file=sys.stderr)
        build_asset(Path(output_dir))
        return True


@jsii.implements(ILocalBundling)
class DirectoryLocalBundling:
    """CDK local bundling of the directory's assets: powertools installed for Lambda, our
    pure-Python packages copied."""

    def __init__(self, packages: tuple[tuple[Path, str], ...], with_signing: bool = False) -> None:
        self._packages = packages
        self._with_signing = with_signing

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        # With signing: every dependency of the functions (pynacl's native part included).
        requirements = None if self._with_signing else (powertools_requirement(),)
        build_asset(Path(output_dir), self._packages, requirements)
        return True


def directory_code(
    packages: tuple[tuple[Path, str], ...] = DIRECTORY_PACKAGES, *, with_signing: bool = False
) -> lambda_.Code:
    """The directory's asset: `messenger_directory`, `messenger_protocol` and powertools
    (once per stack); the failover's adds `messenger` (FAILOVER_PACKAGES); the probe's,
    which signs its handshakes, `with_signing` (all of functions/requirements.txt)."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR / DIRECTORY_PACKAGE),
        asset_hash_type=AssetHashType.OUTPUT,
        exclude=["**/__pycache__", "**/*.pyc"],
        bundling=BundlingOptions(
            image=RUNTIME.bundling_image,
            local=DirectoryLocalBundling(packages, with_signing),
        ),
    )


def function_code() -> lambda_.Code:
    """The code asset (create it once per stack and give it to every function)."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        # The hash of the bundle itself: a deploy ships new code exactly when the bundle
        # changed, be it our code, a dependency release or this bundler.
        asset_hash_type=AssetHashType.OUTPUT,
        exclude=["**/__pycache__", "**/*.pyc"],
        bundling=BundlingOptions(
            # Only used if local bundling declined, which it never does: it fails loudly.
            image=RUNTIME.bundling_image,
            local=PipLocalBundling(),
        ),
    )
