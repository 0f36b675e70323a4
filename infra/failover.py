"""The operator's failover command (docs/protocol.md §7, docs/availability.md: the runbook).

    python -m infra.failover switch c0 --to standby [--env prod] [-c KEY=VALUE ...]
    python -m infra.failover switch c0 --to primary --env prod      # failing back
    python -m infra.failover arm c0 --env prod   # the automated switch may fire again

The cells and standbys are the app's own context (cdk.json, plus `-c` as given to
`cdk deploy`); the URL and table of the side switched to are read from its stack's
outputs (`WebSocketUrl`, `UsersTableName`) and the directory's bucket from the directory
stack's (`DirectoryBucketName`), with boto3. Only the target's region is asked anything:
the other may be gone. The switch itself is `messenger_directory.failover.switch`, the
same the standby's Failover function runs. `arm` lets the automated switch to the standby
(`-c autoFailover=true`), which disarms itself once it fired, fire again: it writes only
the arm item in the standby's Users table (`messenger_directory.failover.arm`).

Credentials: the profile's (`--profile`) for the cell's account; `--directory-profile`
when the directory's bucket is in another account (the bucket admits only the cell's own
entry-writing roles from there). With the directory in two regions the switch writes the
entry into a directory region's bucket and invokes its function (the first region's,
else the second's), with the directory profile's credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from infra.app import cdk_json_context
from infra.config import (
    CellsConfig,
    DeploymentConfig,
    cells_from_context,
    config_from_context,
    names_cells,
)
from infra.directory import directory_location, directory_regions
from messenger_directory.failover import (
    CLIENT_CONFIG,
    PRIMARY,
    SIDES,
    STANDBY,
    CellSides,
    DirectoryBucket,
    Side,
    Switched,
    arm,
    switch,
)
from messenger_directory.wiring import PUBLISH_CONFIG

# (stack name, region) -> that stack's outputs
OutputsOf = Callable[[str, str], Mapping[str, str]]


def cloudformation_outputs(session: boto3.Session) -> OutputsOf:
    def outputs_of(stack: str, region: str) -> Mapping[str, str]:
        client = session.client("cloudformation", region_name=region, config=CLIENT_CONFIG)
        (described,) = client.describe_stacks(StackName=stack)["Stacks"]
        return {output["OutputKey"]: output["OutputValue"] for output in described["Outputs"]}

    return outputs_of


def cell_sides(
    config: DeploymentConfig, cells: CellsConfig, cell_id: str, to: str, outputs_of: OutputsOf
) -> CellSides:
    """The side `to` of a cell, as its stack's outputs tell, and the directory's bucket."""
    cell = next((cell for cell in cells.cells if cell.cell_id == cell_id), None)
    if cell is None:
        known = ", ".join(c.cell_id for c in cells.cells)
        raise ValueError(f"no cell {cell_id!r} in this deployment (its cells: {known})")
    if cell.standby is None:
        raise ValueError(f"cell {cell_id} has no standby (-c standby:{cell_id}=ACCOUNT/REGION)")
    stack, region = (
        (config.standby_stack_name(cell_id), cell.standby.region)
        if to == STANDBY
        else (config.cell_stack_name(cell_id), cell.region)
    )
    outputs = outputs_of(stack, region)
    location = directory_location(config.env, cells)
    directory = outputs_of(config.directory_stack_name, location.region)
    return CellSides(
        cell_id=cell_id,
        sides={to: Side(region, outputs["UsersTableName"], outputs["WebSocketUrl"])},
        directory=DirectoryBucket(
            directory["DirectoryBucketName"],
            location.region,
            location.account,
            # Two directory regions: the switch tries them in this order.
            regions=directory_regions(config.env, cells),
        ),
    )


def deployed_cell_sides(
    context: Mapping[str, Any], cell_id: str, to: str, session: boto3.Session
) -> CellSides:
    """The side `to` of a cell of the deployment `context` describes (cdk.json's context
    first), as deployed."""
    merged = {**cdk_json_context(), **context}
    if not names_cells(merged.get):
        # A deployment without named cells has no standby: nothing to switch to.
        raise ValueError("no cells in the context: pass -c cells=... as to cdk deploy")
    config = config_from_context(merged.get)
    # A switch acts on what is deployed: a placement that today's rules refuse for a new
    # deploy (infra/config.py) may still have to fail over.
    cells = cells_from_context(merged.get, standby_placement=False)
    return cell_sides(config, cells, cell_id, to, cloudformation_outputs(session))


def dynamodb_of(session: boto3.Session) -> Callable[[str], Any]:
    """A DynamoDB client of a region, with the session's credentials."""
    return lambda region: session.client("dynamodb", region_name=region, config=CLIENT_CONFIG)


def run_switch(
    context: Mapping[str, Any],
    cell_id: str,
    to: str,
    session: boto3.Session,
    directory_session: boto3.Session,
) -> Switched:
    """Switch a cell of the deployment `context` describes (cdk.json's context first)."""
    sides = deployed_cell_sides(context, cell_id, to, session)
    return switch(
        sides,
        to,
        dynamodb_for=dynamodb_of(session),
        s3=directory_session.client("s3", region_name=sides.directory.region, config=CLIENT_CONFIG),
        s3_for=lambda region: directory_session.client(
            "s3", region_name=region, config=CLIENT_CONFIG
        ),
        lambda_for=lambda region: directory_session.client(
            "lambda", region_name=region, config=PUBLISH_CONFIG
        ),
        # Both sides' stages: the old one answers `ping` MOVED, the target `pong`.
        apigateway_for=lambda region: session.client(
            "apigatewayv2", region_name=region, config=CLIENT_CONFIG
        ),
    )


def run_arm(context: Mapping[str, Any], cell_id: str, session: boto3.Session) -> CellSides:
    """Re-arm the automated switch of a cell to its standby; the cell's standby side."""
    sides = deployed_cell_sides(context, cell_id, STANDBY, session)
    arm(sides, dynamodb_for=dynamodb_of(session))
    return sides


def _context_entry(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not (key and equals):
        raise argparse.ArgumentTypeError(f"-c takes KEY=VALUE, not {text!r}")
    return key, value


def _deployment_arguments(command: argparse.ArgumentParser) -> None:
    """What names a cell of a deployment and the credentials to reach it."""
    command.add_argument("cell", help="the cell, e.g. c0")
    command.add_argument("--env", default=None, help="the deployment's env (default: dev)")
    command.add_argument(
        "-c", "--context", action="append", type=_context_entry, default=[], metavar="KEY=VALUE"
    )
    command.add_argument("--profile", default=None, help="AWS profile of the cell's account")
    command.add_argument(
        "--directory-profile", default=None, help="AWS profile of the directory's account"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.failover", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("switch", help="make a side of a cell the active one")
    _deployment_arguments(command)
    command.add_argument("--to", required=True, choices=SIDES, help=f"{STANDBY} or {PRIMARY}")
    _deployment_arguments(
        commands.add_parser("arm", help="let the automated switch to the standby fire again")
    )
    arguments = parser.parse_args(argv)
    context: dict[str, Any] = dict(arguments.context)
    if arguments.env:
        context["env"] = arguments.env
    session = boto3.Session(profile_name=arguments.profile)
    directory_session = (
        boto3.Session(profile_name=arguments.directory_profile)
        if arguments.directory_profile
        else session
    )
    try:
        if arguments.command == "arm":
            armed = run_arm(context, arguments.cell, session)
            side = armed.side(STANDBY)
            print(json.dumps({"cell": armed.cell_id, "armed": True, "region": side.region}))
            return 0
        switched = run_switch(context, arguments.cell, arguments.to, session, directory_session)
    except ValueError as error:
        print(f"failover: {error}", file=sys.stderr)
        return 2
    print(json.dumps(switched.summary()))
    if not switched.bumped:
        print(
            f"{switched.to} was already the active side of {switched.cell_id}: "
            "its epoch is unchanged; the directory entry was written again",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
