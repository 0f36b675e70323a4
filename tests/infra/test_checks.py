"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized templates."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest
from cfnlint.api import ManualArgs, lint_file

import infra
import infra.nag
from infra.app import MISSING_DIRECTORY_KEY_WARNING, build_app
from infra.nag import PLUGIN
from tests.infra.conftest import (
    CELLS_DEV_CONTEXT,
    CELLS_PROD_CONTEXT,
    NO_BUNDLING,
    PROD_CONTEXT,
    REGION,
    STANDBY_PROD_CONTEXT,
    Synthesized,
    SynthesizedCells,
)

pytestmark = pytest.mark.infra

# CDK makes a function depend on its role explicitly although it also references it.
CFN_LINT_ACCEPTED_WARNINGS = {"W3005"}
# The warning of a cell stack with peers synthesized without `-c directoryKey` (dev's cells
# come before the directory's first deploy gives the key): expected there, and only there.
MISSING_KEY_RULE = f"Annotation::{MISSING_DIRECTORY_KEY_WARNING}"


def without_missing_key(plugin_reports: list[dict], keyless_cells: bool) -> list[dict]:
    """The plugins' reports without the missing directory key's warning, which must be
    among their violations exactly when the deployment is cells without a directory key."""
    missing = [
        violation
        for report in plugin_reports
        for violation in report["violations"]
        if violation["ruleName"] == MISSING_KEY_RULE
    ]
    assert bool(missing) == keyless_cells, missing
    return [
        {
            **report,
            "violations": [v for v in report["violations"] if v["ruleName"] != MISSING_KEY_RULE],
        }
        for report in plugin_reports
    ]


@pytest.fixture(
    scope="session",
    params=["dev", "prod", "cells_dev", "cells_prod", "standby_dev", "standby_prod"],
)
def each_app(request: pytest.FixtureRequest) -> Synthesized | SynthesizedCells:
    """Every app the tests synthesize: one cell (dev, prod), several (docs/protocol.md §6), and
    cells with a standby (§7)."""
    synthesized: Synthesized | SynthesizedCells = request.getfixturevalue(request.param)
    return synthesized


def test_given_cdk_nag_then_the_stack_has_no_unacknowledged_finding(each_app):
    keyless_cells = isinstance(each_app, SynthesizedCells) and not each_app.cells.directory_key
    reports = {
        report["pluginName"]: report
        for report in without_missing_key(
            each_app.validation_report["pluginReports"], keyless_cells
        )
    }
    assert PLUGIN in reports
    # cdk-nag, and CDK's own annotations (with the feature flags of cdk.json)
    for report in reports.values():
        assert report["violations"] == [], report["pluginName"]
        assert report["conclusion"] == "success" or keyless_cells, report["pluginName"]


def test_given_an_acknowledgement_then_it_names_one_finding_and_says_why(each_app):
    assert each_app.acknowledgements
    for path, rule, reason in each_app.acknowledgements:
        # cdk-nag's findings, or a warning CDK itself annotates a construct with
        assert rule.startswith(
            (f"{PLUGIN}::{PLUGIN}-", "Annotation::@aws-cdk/", "CloudFormation-Validate::")
        ), (path, rule)
        # A reason that explains this case, not "suppressed" or "not needed".
        assert len(reason.split()) >= 12, (path, rule, reason)


@pytest.mark.parametrize(
    "context",
    [PROD_CONTEXT, CELLS_DEV_CONTEXT, CELLS_PROD_CONTEXT, STANDBY_PROD_CONTEXT],
    ids=["prod", "cells-dev", "cells-prod", "standby-prod"],
)
def test_given_the_acknowledgements_removed_then_they_were_each_covering_a_real_finding(
    tmp_path, monkeypatch, context
):
    # Given a synthesis where acknowledging only records what would be acknowledged
    acknowledged: list[tuple[str, str]] = []

    def record(construct, rule, reason):
        acknowledged.append((construct.node.path, rule))

    # (in every module of infra/ that acknowledges findings)
    for found in pkgutil.iter_modules(infra.__path__):
        module = importlib.import_module(f"infra.{found.name}")
        if getattr(module, "acknowledge", None) is infra.nag.acknowledge:
            monkeypatch.setattr(module, "acknowledge", record)
    app = build_app({**NO_BUNDLING, **context}, outdir=str(tmp_path))

    # When cdk-nag runs, it stops synthesis
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    # Then every finding is one of ours, acknowledged on its construct or a parent of it,
    # and every acknowledgement was needed
    report = json.loads((tmp_path / "validation-report.json").read_text())
    keyless_cells = "cells" in context and "directoryKey" not in context
    findings = {
        (construct["constructPath"], violation["ruleName"])
        for plugin in without_missing_key(report["pluginReports"], keyless_cells)
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    covered = {
        (finding_path, rule)
        for finding_path, rule in findings
        for path, acknowledged_rule in acknowledged
        if rule == acknowledged_rule and f"{finding_path}/".startswith(f"{path}/")
    }
    assert covered == findings
    assert len(acknowledged) == len(findings)


def test_given_cfn_lint_then_every_template_has_no_error_and_no_unexplained_warning(each_app):
    # Here in the regions the templates are for; every supported region: test_regions.py
    regions = (
        sorted(
            {cell.region for cell in each_app.cells.cells}
            | {cell.standby.region for cell in each_app.cells.cells if cell.standby}
        )
        if isinstance(each_app, SynthesizedCells)
        else [REGION]
    )
    templates = list(each_app.outdir.glob("*.template.json"))
    assert len(templates) >= 2
    for template in templates:
        matches = lint_file(template, config=ManualArgs(regions=regions))
        errors = [match for match in matches if match.rule.id.startswith("E")]
        assert errors == [], template.name
        others = [
            match
            for match in matches
            if match.rule.id not in CFN_LINT_ACCEPTED_WARNINGS and match not in errors
        ]
        assert others == [], template.name
