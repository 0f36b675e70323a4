"""CDK entry point (`cdk.json`: `.venv/bin/python -m infra.app`).

    npx cdk deploy --all -c env=dev  # the logging-role stack (once per account and region)
                                     # if missing, then Messenger-dev; README lists the rest
    npx cdk synth -c bundle=false    # the templates only, without building the asset
    npx cdk deploy --all -c cells=c0:111111111111/us-east-1,c1:222222222222/eu-west-1
                                     # cells (docs/protocol.md §6): Messenger-dev-Directory, then
                                     # Messenger-dev-c0 and Messenger-dev-c1, each in its own
                                     # account and region
    npx cdk deploy --all -c cells=... -c standby:c1=222222222222/eu-central-1
                                     # c1's Users and Queue get a replica in eu-central-1
                                     # (in place: every table is named from the first
                                     # deploy), and Messenger-dev-c1-standby runs there on
                                     # them, with a Limits table of its own
                                     # (docs/availability.md); -c autoFailover=true lets it
                                     # switch over by itself. No side of a standby may
                                     # run in the directory's region, the first cell's
                                     # (docs/infra.md, "Table names and standbys")
    npx cdk deploy --all -c cells=... -c directorySecondRegion=R2 -c directoryWitness=W
                                     # the directory in two regions: Messenger-dev-Directory-
                                     # R2 after Messenger-dev-Directory, an MRSC
                                     # versions table, CloudFront failing over between the
                                     # two buckets (docs/infra.md, "The directory in two
                                     # regions")

Every deployment is cells (infra/config.py). Without `-c cells` it is one cell, c0, in
the stack Messenger-<env>, deployed to the account and region of the AWS profile the
CLI runs with (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION) or to `-c account=... -c
region=...`. The region is needed at synth time: what the stack uses is checked against
what the region offers (infra/regions.py).

cdk-nag's AwsSolutions pack checks the app as a validation plugin: a finding that is not
acknowledged (with its reason, next to the construct that causes it) stops synth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.cells import CellPlacement
from infra.config import CellsConfig, DeploymentConfig, cells_from_context, config_from_context
from infra.directory import DirectoryStack
from infra.directory_regions import DirectoryRegionPeer, DirectoryRegionStack
from infra.functions import LIVE_ALIAS
from infra.logging_role import api_gateway_logging_stack
from infra.mesh import admit_relay_record_writers
from infra.stack import MessengerStack

# `-c bundle=false`: synthesize without building the Lambda asset.
BUNDLE_CONTEXT = "bundle"
BUNDLING_STACKS_CONTEXT = "aws:cdk:bundling-stacks"
# `-c apiGatewayLogsRole=false`: the account's API Gateway logging role is managed
# elsewhere; the app then has no logging-role stack.
LOGS_ROLE_CONTEXT = "apiGatewayLogsRole"
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
# The id of the warning a cell stack with peers gets at synth without `-c directoryKey`
# (`CellPlacement.missing_directory_key`); `cdk synth --strict` makes it an error.
MISSING_DIRECTORY_KEY_WARNING = "messenger:missingDirectoryKey"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags, defaults), which the CLI passes to the app."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> App:
    """The app and its stacks; tests pass context (and skip bundling) through here.

    cdk.json's context comes first, so that a synthesis outside the CLI (tests) gets the
    same feature flags; what the CLI passes wins over both.
    """
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    if str(app.node.try_get_context(BUNDLE_CONTEXT)).lower() == "false":
        # The CLI keeps `aws:cdk:*` context to itself, so this is how a synth that only
        # wants the template (tests, reviews) skips pip. Set before any stack exists.
        app.node.set_context(BUNDLING_STACKS_CONTEXT, [])
    get = app.node.try_get_context
    config = config_from_context(get)
    cells = cells_from_context(get, os.environ if environ is None else environ)
    _add_cells(app, config, cells)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def _add_cells(app: App, config: DeploymentConfig, cells: CellsConfig) -> None:
    """The directory's stack if the deployment has one, then one messenger stack per cell
    (and per standby), each in its own account and region."""
    directory = (
        DirectoryStack(app, config.directory_stack_name, config=config, cells=cells)
        if cells.has_directory
        else None
    )
    if directory and cells.organization and len(cells.accounts) > 1:
        admit_relay_record_writers(directory.bucket, config.env, cells.organization)
    if directory and cells.directory_second_region:
        DirectoryRegionStack(
            app,
            f"{config.directory_stack_name}-{cells.directory_second_region}",
            config=config,
            cells=cells,
            first=DirectoryRegionPeer(
                bucket_name=directory.location.bucket,
                key_arn=directory.key.key.key_arn,
                distribution_arn=directory.distribution.distribution_arn,
            ),
        )
    for cell in cells.cells:
        placement = CellPlacement(
            env=config.env,
            cell=cell,
            cells=cells,
            # SnapStart restores published versions only: peers invoke the live alias.
            relay_qualifier=LIVE_ALIAS if config.snap_start else None,
        )
        # A deployment without a directory keeps the one stack name it always had.
        name = config.cell_stack_name(cell.cell_id) if cells.has_directory else config.stack_name
        stack = _cell_stack(app, config, name, placement)
        warning = placement.missing_directory_key
        if warning is not None:
            Annotations.of(stack).add_warning_v2(MISSING_DIRECTORY_KEY_WARNING, warning)
        if directory:
            stack.add_stack_dependency(
                directory, "a cell writes its entry into the directory's bucket"
            )
        if cell.standby:
            standby = _cell_stack(
                app,
                config,
                config.standby_stack_name(cell.cell_id),
                replace(placement, standby=True),
            )
            standby.add_stack_dependency(
                stack, "the standby runs on the primary's tables' replicas"
            )


def _cell_stack(
    app: App, config: DeploymentConfig, name: str, placement: CellPlacement
) -> MessengerStack:
    stack = MessengerStack(app, name, config=config, cell=placement)
    if config.api_gateway_logs_role:
        stack.add_stack_dependency(
            api_gateway_logging_stack(app, placement.target),
            "API Gateway needs its CloudWatch role before a stage may log",
        )
    return stack


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
