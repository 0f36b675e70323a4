"""The stack, synthesized once per session per environment and shared by every test.

`dev` is what `cdk deploy` makes with no options (no push platform); `prod` has two push
platforms, one given as an ARN and one as an SSM parameter. `cells_dev` and `cells_prod`
are deployments of several cells (docs/protocol.md §6). Bundling is skipped: the templates do
not depend on what is inside the asset (tests/infra/test_bundling.py builds that one for
real).

A synthesis costs seconds of CPU (most of it in CDK's node process), and pytest-xdist gives
each worker a session of its own: `synthesized_once` / `synthesized_cells_once` synthesize
one context once for the whole run, whichever worker asks first, and the other workers read
the cloud assembly it wrote. Use them for the code as it is; a test that patches the code
before synthesizing calls `synthesize` / `synthesize_cells`, which always synthesize.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Validations
from aws_cdk.assertions import Template

from infra.app import build_app, cdk_json_context
from infra.config import CellsConfig, DeploymentConfig, cells_from_context, config_from_context
from messenger.contract import AUTHORIZER, ROUTES, WORKERS

# Where the templates are synthesized for: a region with SnapStart and SNS mobile push.
ACCOUNT = "123456789012"
REGION = "us-east-1"
TARGET: dict[str, Any] = {"account": ACCOUNT, "region": REGION}
APNS_APP = f"arn:aws:sns:{REGION}:{ACCOUNT}:app/APNS/messenger-ios"
GCM_PARAMETER = "/messenger/push/gcm"
GCM_APP = f"arn:aws:sns:{REGION}:{ACCOUNT}:app/GCM/messenger-android"


def ssm_lookup(
    name: str, value: str, account: str = ACCOUNT, region: str = REGION
) -> dict[str, str]:
    """The context entry `cdk synth` records in cdk.context.json for an SSM lookup."""
    return {f"ssm:account={account}:parameterName={name}:region={region}": value}


ALARM_EMAIL = "oncall@example.com"
NO_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}
# Every function of the contract: (logical name, what it may touch).
FUNCTIONS = [
    (AUTHORIZER.function_name, AUTHORIZER.access),
    *((route.function_name, route.access) for route in ROUTES),
    *((worker.function_name, worker.access) for worker in WORKERS),
]
FUNCTION_NAMES = [name for name, _ in FUNCTIONS]
# What infra/config.py promises each environment, in CloudFormation's terms.
LOG_RETENTION_DAYS = {"dev": 7, "prod": 30}


@dataclass
class Synthesized:
    config: DeploymentConfig
    outdir: Path
    template: Template
    # The template as plain JSON, for checks the assertions API does not express well.
    json: dict[str, Any]
    validation_report: dict[str, Any]
    # (construct path, rule id, reason) of every cdk-nag acknowledgement in the app.
    acknowledgements: list[tuple[str, str, str]]
    # The stack this is the template of, when it is not the single-cell one.
    stack_name: str | None = None

    @property
    def log_retention_days(self) -> int:
        return LOG_RETENTION_DAYS[self.config.env]

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack_name or self.config.stack_name}.template.json"

    def templates(self) -> dict[str, dict[str, Any]]:
        """Every stack the app synthesized (artifact id -> template), this one included."""
        return {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in self.outdir.glob("*.template.json")
        }

    def dependencies(self) -> list[str]:
        """The artifact ids of the stacks `cdk deploy` deploys before this one."""
        manifest = json.loads((self.outdir / "manifest.json").read_text())
        stack = manifest["artifacts"][self.stack_name or self.config.stack_name]
        return [
            name
            for name in stack.get("dependencies", [])
            if manifest["artifacts"][name]["type"] == "aws:cloudformation:stack"
        ]

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.json["Resources"].items()
            if resource["Type"] == cfn_type
        }

    def policy_statements(self, sid: str) -> list[dict[str, Any]]:
        """Every statement of the stack's IAM policies with that Sid."""
        return [
            statement
            for policy in self.resources("AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement.get("Sid") == sid
        ]


def acknowledgements_of(app: App) -> list[tuple[str, str, str]]:
    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found += [
                    (construct.node.path, rule, reason) for rule, reason in entry.data.items()
                ]
    return found


def synthesize(context: dict[str, Any], outdir: Path) -> Synthesized:
    """Synthesize the app as `cdk synth` would, cdk-nag included (it fails on findings)."""
    app = build_app({**NO_BUNDLING, **context}, outdir=str(outdir))
    app.synth()
    config = config_from_context(app.node.try_get_context)
    return stack_of(app, config, outdir)


def stack_of(
    app: App | list[tuple[str, str, str]],
    config: DeploymentConfig,
    outdir: Path,
    stack_name: str | None = None,
) -> Synthesized:
    """One synthesized stack of the app (the single-cell one by default); the app, or its
    acknowledgements when it was synthesized by another process."""
    document = json.loads((outdir / f"{stack_name or config.stack_name}.template.json").read_text())
    return Synthesized(
        config=config,
        outdir=outdir,
        template=Template.from_json(document),
        json=document,
        validation_report=json.loads((outdir / "validation-report.json").read_text()),
        acknowledgements=acknowledgements_of(app) if isinstance(app, App) else app,
        stack_name=stack_name,
    )


# --- One synthesis per context for the whole run ---------------------------------------

# What `_synthesized_once` writes beside a finished cloud assembly: the app's
# acknowledgements (they live on its constructs, not in the assembly).
ACKNOWLEDGEMENTS_FILE = "acknowledgements.json"
# This process's loaded syntheses, by assembly directory.
_loaded: dict[Path, Synthesized | SynthesizedCells] = {}


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory every process of the run shares: pytest-xdist gives each worker a
    basetemp inside the controller's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


def _synthesized_once(
    context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, *, cells: bool
) -> Synthesized | SynthesizedCells:
    key = hashlib.sha256(json.dumps([cells, context], sort_keys=True).encode()).hexdigest()[:16]
    outdir = _shared_root(tmp_path_factory) / "cdk-shared" / key
    if outdir in _loaded:
        return _loaded[outdir]
    outdir.parent.mkdir(exist_ok=True)
    # One process synthesizes; the others wait for it, then read what it wrote.
    with open(outdir.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = outdir / ACKNOWLEDGEMENTS_FILE
        if done.exists():
            acknowledgements = [tuple(entry) for entry in json.loads(done.read_text())]
            loaded = from_assembly(context, outdir, acknowledgements, cells=cells)
        else:
            outdir.mkdir(exist_ok=True)
            loaded = synthesize_cells(context, outdir) if cells else synthesize(context, outdir)
            done.write_text(json.dumps(loaded.acknowledgements))
    _loaded[outdir] = loaded
    return loaded


def from_assembly(
    context: dict[str, Any],
    outdir: Path,
    acknowledgements: list[tuple[str, str, str]],
    *,
    cells: bool,
) -> Synthesized | SynthesizedCells:
    """What `synthesize` or `synthesize_cells` returned for `context`, from its assembly."""
    # As build_app reads it: cdk.json's context, then the test's.
    get = {**cdk_json_context(), **NO_BUNDLING, **context}.get
    config = config_from_context(get)
    if not cells:
        return stack_of(acknowledgements, config, outdir)
    return cells_of(acknowledgements, config, cells_from_context(get), outdir)


def synthesized_once(
    context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    """`synthesize(context, ...)`, made once in the run and shared by every worker."""
    synthesized = _synthesized_once(context, tmp_path_factory, cells=False)
    assert isinstance(synthesized, Synthesized)
    return synthesized


def synthesized_cells_once(
    context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> SynthesizedCells:
    """`synthesize_cells(context, ...)`, made once in the run and shared by every worker."""
    synthesized = _synthesized_once(context, tmp_path_factory, cells=True)
    assert isinstance(synthesized, SynthesizedCells)
    return synthesized


# dev as `cdk deploy` makes it with no options.
DEV_CONTEXT: dict[str, Any] = {**TARGET, "env": "dev"}


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesized_once(DEV_CONTEXT, tmp_path_factory)


# prod as the README deploys it: one platform by ARN, one by SSM parameter (looked up).
PROD_CONTEXT: dict[str, Any] = {
    **TARGET,
    "env": "prod",
    "push:APNS": APNS_APP,
    "push:GCM": GCM_PARAMETER,
    **ssm_lookup(GCM_PARAMETER, GCM_APP),
    "alarmEmail": ALARM_EMAIL,
}


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesized_once(PROD_CONTEXT, tmp_path_factory)


@pytest.fixture(scope="session", params=["dev", "prod"])
def each_env(request: pytest.FixtureRequest) -> Synthesized:
    synthesized: Synthesized = request.getfixturevalue(request.param)
    return synthesized


# --- Cells ---------------------------------------------------------------------------

C0_ACCOUNT, C1_ACCOUNT = "111111111111", "222222222222"
# The README's example: two cells, two accounts, two regions.
# The AWS Organization of the test accounts: cells in several accounts need one.
ORGANIZATION = "o-exampleorg01"
CELLS_DEV_CONTEXT: dict[str, Any] = {
    "env": "dev",
    "organization": ORGANIZATION,
    "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
}
# The directory stack's output DirectoryPublicKey, as an operator gives it to the cells
# (docs/scale.md "The directory's trust chain"); dev's cells are synthesized before it.
DIRECTORY_PUBLIC_KEY = "A" * 42 + "E"
# prod (SnapStart: peers invoke aliases), and a third cell in c0's account, c1's region.
CELLS_PROD_CONTEXT: dict[str, Any] = {
    "env": "prod",
    "organization": ORGANIZATION,
    "directoryKey": DIRECTORY_PUBLIC_KEY,
    "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1,c2:{C0_ACCOUNT}/eu-west-1",
}


@dataclass
class SynthesizedCells:
    """An app of several cells: each cell's stack (and standby's), the directory's, and the
    app's checks."""

    config: DeploymentConfig
    cells: CellsConfig
    outdir: Path
    stacks: dict[str, Synthesized]
    validation_report: dict[str, Any]
    acknowledgements: list[tuple[str, str, str]]

    def cell(self, cell_id: str) -> Synthesized:
        return self.stacks[self.config.cell_stack_name(cell_id)]

    @property
    def directory(self) -> Synthesized:
        return self.stacks[self.config.directory_stack_name]

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.outdir / "manifest.json").read_text())
        return manifest


def synthesize_cells(context: dict[str, Any], outdir: Path) -> SynthesizedCells:
    """Synthesize an app of cells as `cdk synth` would, cdk-nag included."""
    app = build_app({**NO_BUNDLING, **context}, outdir=str(outdir))
    app.synth()
    get = app.node.try_get_context
    return cells_of(
        acknowledgements_of(app), config_from_context(get), cells_from_context(get), outdir
    )


def cells_of(
    acknowledgements: list[tuple[str, str, str]],
    config: DeploymentConfig,
    cells: CellsConfig,
    outdir: Path,
) -> SynthesizedCells:
    """The stacks of a synthesized app of cells."""
    assert cells.has_directory
    names = [config.cell_stack_name(cell.cell_id) for cell in cells.cells]
    names += [config.standby_stack_name(cell.cell_id) for cell in cells.cells if cell.standby]
    stacks = {
        name: stack_of(acknowledgements, config, outdir, name)
        for name in [*names, config.directory_stack_name]
    }
    report = json.loads((outdir / "validation-report.json").read_text())
    return SynthesizedCells(config, cells, outdir, stacks, report, acknowledgements)


@pytest.fixture(scope="session")
def cells_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedCells]:
    yield synthesized_cells_once(CELLS_DEV_CONTEXT, tmp_path_factory)


@pytest.fixture(scope="session")
def cells_prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedCells]:
    yield synthesized_cells_once(CELLS_PROD_CONTEXT, tmp_path_factory)


@pytest.fixture(scope="session", params=["cells_dev", "cells_prod"])
def each_cells_app(request: pytest.FixtureRequest) -> SynthesizedCells:
    synthesized: SynthesizedCells = request.getfixturevalue(request.param)
    return synthesized


# --- Standbys (docs/protocol.md §7) ------------------------------------------------------

# The README's two cells, c0 with a standby in another region of its account; c1 named
# first, so that the directory is in its region, where no side of a standby runs.
STANDBY_DEV_CONTEXT: dict[str, Any] = {
    "env": "dev",
    "organization": ORGANIZATION,
    "cells": f"c1:{C1_ACCOUNT}/eu-west-1,c0:{C0_ACCOUNT}/us-east-1",
    "standby:c0": f"{C0_ACCOUNT}/us-west-2",
}
# prod, the standby's cell outside the directory's account, switching over by itself.
STANDBY_PROD_CONTEXT: dict[str, Any] = {
    "env": "prod",
    "organization": ORGANIZATION,
    "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
    "standby:c1": f"{C1_ACCOUNT}/eu-central-1",
    "autoFailover": "true",
}


@pytest.fixture(scope="session")
def standby_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedCells]:
    yield synthesized_cells_once(STANDBY_DEV_CONTEXT, tmp_path_factory)


@pytest.fixture(scope="session")
def standby_prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedCells]:
    yield synthesized_cells_once(STANDBY_PROD_CONTEXT, tmp_path_factory)


# --- The directory in two regions (issue 21) ----------------------------------------------

# prod's standby deployment with the directory in us-east-1 (c0's) and us-west-2, the
# versions table's witness in us-east-2: no primary with a standby in either.
DIRECTORY_SECOND_REGION = "us-west-2"
DIRECTORY_WITNESS = "us-east-2"
DIRECTORY_TWO_REGIONS_CONTEXT: dict[str, Any] = {
    **STANDBY_PROD_CONTEXT,
    "directorySecondRegion": DIRECTORY_SECOND_REGION,
    "directoryWitness": DIRECTORY_WITNESS,
}


@pytest.fixture(scope="session")
def directory_two_regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedCells]:
    yield synthesized_cells_once(DIRECTORY_TWO_REGIONS_CONTEXT, tmp_path_factory)
