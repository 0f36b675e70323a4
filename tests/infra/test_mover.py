"""Shard moves on AWS in the templates (infra/mover.py): each primary cell's Mover and its
state machine, what the Mover may touch, the alarms, and the directory function it calls.

ARNs and names are written out from the design, not computed with infra code."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from typing import Any

import pytest

from messenger.contract import LIMITS_TABLE, QUEUE_TABLE, USERS_TABLE, MoverEnv
from tests.infra.conftest import (
    C0_ACCOUNT,
    C1_ACCOUNT,
    ORGANIZATION,
    SynthesizedCells,
    synthesized_cells_once,
)
from tests.infra.test_permissions import _as_list, table_arn

pytestmark = pytest.mark.infra

MOVER_HANDLER = "messenger.handlers.mover.handler"
# Where each cell of the apps is (conftest.CELLS_DEV_CONTEXT, CELLS_PROD_CONTEXT).
PLACES = {
    "c0": (C0_ACCOUNT, "us-east-1"),
    "c1": (C1_ACCOUNT, "eu-west-1"),
    "c2": (C0_ACCOUNT, "eu-west-1"),
}
TABLES = ("users", "queue", "limits")


def mover_of(app: SynthesizedCells, cell_id: str) -> tuple[str, dict[str, Any]]:
    stack = app.cell(cell_id)
    (found,) = [
        (logical_id, resource)
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == MOVER_HANDLER
    ]
    return found


def mover_statements(app: SynthesizedCells, cell_id: str) -> list[dict[str, Any]]:
    stack = app.cell(cell_id)
    _, function = mover_of(app, cell_id)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in stack.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def peer_table(app: SynthesizedCells, cell_id: str, table: str) -> str:
    account, region = PLACES[cell_id]
    return f"arn:aws:dynamodb:{region}:{account}:table/messenger-{app.config.env}-{cell_id}-{table}"


def test_given_cells_then_each_primary_has_a_mover_state_machine_looping_until_done(
    each_cells_app,
):
    for cell in each_cells_app.cells.cells:
        stack = each_cells_app.cell(cell.cell_id)
        function_id, function = mover_of(each_cells_app, cell.cell_id)
        # A step at a time, up to Lambda's longest
        assert function["Properties"]["Timeout"] == 900
        (machine,) = stack.resources("AWS::StepFunctions::StateMachine").values()
        definition = json.loads(
            "".join(
                part if isinstance(part, str) else "<ref>"
                for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
            )
        )
        states = definition["States"]
        assert definition["StartAt"] == "RunSteps"
        run = states["RunSteps"]
        assert run["Type"] == "Task" and run["Next"] == "Finished"
        # Retried with backoff, then a failure the alarm hears of
        assert any(retry["ErrorEquals"] == ["States.ALL"] for retry in run["Retry"])
        assert run["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "MoveFailed"}]
        assert states["MoveFailed"]["Type"] == "Fail"
        choices = states["Finished"]["Choices"]
        assert {"Variable": "$.done", "BooleanEquals": True, "Next": "Moved"} in choices
        # An aborted move's rollback ends the execution too, apart
        rolled_back = next(choice for choice in choices if choice["Next"] == "RolledBack")
        assert {"Variable": "$.status", "StringEquals": "aborted"} in rolled_back["And"]
        assert states["RolledBack"]["Type"] == "Succeed"
        assert states["Finished"]["Default"] == "RunSteps"
        assert states["Moved"]["Type"] == "Succeed"
        # The operator's command finds both by the stack's outputs
        outputs = stack.json["Outputs"]
        assert outputs["MoverFunctionName"]["Value"] == {"Ref": function_id}
        assert "MoverStateMachineArn" in outputs
        # It learns every cell's tables, and the directory function's ARN
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[MoverEnv.CELL_ID.value] == cell.cell_id
        # Its own tables only: the peers' are found by the naming rule at run time
        given = json.dumps(variables[MoverEnv.CELLS.value])
        assert f'\\"{cell.cell_id}\\"' in given
        for other in each_cells_app.cells.cells:
            if other.cell_id != cell.cell_id:
                assert f'\\"{other.cell_id}\\"' not in given
        assert variables[MoverEnv.DEPLOYMENT.value] == each_cells_app.config.env
        directory = (
            f"arn:aws:lambda:us-east-1:{C0_ACCOUNT}:function:"
            f"messenger-{each_cells_app.config.env}-directory-publish"
        )
        assert variables[MoverEnv.DIRECTORY_FUNCTION.value] == directory


def test_given_a_mover_then_it_may_touch_only_what_a_move_needs(each_cells_app):
    env = each_cells_app.config.env
    for cell in each_cells_app.cells.cells:
        stack = each_cells_app.cell(cell.cell_id)
        statements = mover_statements(each_cells_app, cell.cell_id)
        by_rule = {
            table: f"arn:aws:dynamodb:*:*:table/messenger-{env}-*-{table}" for table in TABLES
        }
        peers = [c.cell_id for c in each_cells_app.cells.cells if c.cell_id != cell.cell_id]
        own = {
            name: {"Fn::GetAtt": [table_arn(stack, spec).strip("<>").removesuffix(".Arn"), "Arn"]}
            for name, spec in zip(TABLES, (USERS_TABLE, QUEUE_TABLE, LIMITS_TABLE), strict=True)
        }
        # No standby's own table (the Limits pattern would match its Limits table)
        (deny,) = [s for s in statements if s["Effect"] == "Deny"]
        assert _as_list(deny["Resource"]) == [
            f"arn:aws:dynamodb:*:*:table/messenger-{env}-*-standby-limits"
        ]
        assert _as_list(deny["Action"]) == ["dynamodb:BatchWriteItem"]
        standby_limits = (
            f"arn:aws:dynamodb:us-west-2:{C0_ACCOUNT}:table/messenger-{env}-c0-standby-limits"
        )
        assert fnmatch(standby_limits, by_rule["limits"]) and fnmatch(
            standby_limits, deny["Resource"]
        )
        for statement in statements:
            if statement["Effect"] == "Deny":
                continue
            actions = _as_list(statement["Action"])
            resources = _as_list(statement["Resource"])
            # No wildcard action, and no table but the cells' own three
            assert all("*" not in action for action in actions), statement
            if any(action.startswith("dynamodb:") for action in actions):
                allowed = [*own.values(), *by_rule.values()]
                assert all(resource in allowed for resource in resources), statement
        by_sid = {statement["Sid"]: statement for statement in statements}
        # Peers' tables by the naming rule (one pattern per role, whatever the number of
        # cells), each peer's table among them: the copy's writes, and the range-state and
        # move-record items only
        assert sorted(_as_list(by_sid["CopyIntoPeerTables"]["Action"])) == [
            "dynamodb:BatchWriteItem"
        ]
        assert sorted(_as_list(by_sid["CopyIntoPeerTables"]["Resource"])) == sorted(
            by_rule.values()
        )
        for peer in peers:
            for table in TABLES:
                assert fnmatch(peer_table(each_cells_app, peer, table), by_rule[table])
        state = by_sid["PeerRangeStateAndMoveRecords"]
        assert _as_list(state["Resource"]) == [by_rule["users"]]
        assert state["Condition"] == {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MOVE", "CELL"]}
        }
        assert "dynamodb:Scan" not in _as_list(state["Action"])
        # Its own Users table's records and range state by key only; reads with Scan
        own_records = by_sid["OwnMoveRecordsAndRangeState"]
        assert own_records["Resource"] == own["users"]
        assert own_records["Condition"] == state["Condition"]
        assert sorted(_as_list(by_sid["ReadAndCleanOwnTables"]["Resource"]), key=str) == sorted(
            own.values(), key=str
        )
        # One function of the directory's account, nothing else there
        invoke = by_sid["InvokeDirectoryFunction"]
        assert invoke["Action"] == "lambda:InvokeFunction"
        assert invoke["Resource"] == (
            f"arn:aws:lambda:us-east-1:{C0_ACCOUNT}:function:messenger-{env}-directory-publish"
        )
        assert by_sid["CloseMovedConnections"]["Action"] == "execute-api:ManageConnections"


def test_given_a_mover_then_a_failed_or_stuck_move_alarms_on_the_cells_topic(each_cells_app):
    for cell in each_cells_app.cells.cells:
        stack = each_cells_app.cell(cell.cell_id)
        alarms = {
            logical_id: alarm["Properties"]
            for logical_id, alarm in stack.resources("AWS::CloudWatch::Alarm").items()
            if logical_id.startswith("ShardMover")
        }
        (topic,) = stack.resources("AWS::SNS::Topic")
        failed = next(a for i, a in alarms.items() if "MoveFailedAlarm" in i)
        metrics = {
            metric["MetricStat"]["Metric"]["MetricName"]
            for metric in failed["Metrics"]
            if "MetricStat" in metric
        }
        assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
        assert failed["Threshold"] == 1
        stuck = next(a for i, a in alarms.items() if "MoveStepFailuresAlarm" in i)
        assert [metric["MetricStat"]["Metric"]["MetricName"] for metric in stuck["Metrics"]] == [
            "MoveStepFailures"
        ]
        assert stuck["Threshold"] == 3
        for alarm in (failed, stuck):
            assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_given_cells_in_other_accounts_then_the_directory_function_admits_their_movers(
    each_cells_app,
):
    stack = each_cells_app.directory
    (function_id,) = [
        logical_id
        for logical_id, fn in stack.resources("AWS::Lambda::Function").items()
        if fn["Properties"].get("Handler") == "messenger_directory.handlers.publish"
    ]
    function = stack.json["Resources"][function_id]["Properties"]
    assert function["FunctionName"] == f"messenger-{each_cells_app.config.env}-directory-publish"
    permissions = [
        permission["Properties"]
        for permission in stack.resources("AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    # Besides EventBridge's (the entry-written rule), one for the organization's, whatever
    # the number of accounts and cells
    assert [
        (p["Principal"], p["Action"], p.get("PrincipalOrgID"))
        for p in permissions
        if "amazonaws.com" not in p["Principal"]
    ] == [("*", "lambda:InvokeFunction", ORGANIZATION)]


def table_policies(stack: Any) -> dict[str, list[dict[str, Any]]]:
    """Each table's resource policy (its primary replica's), by table name's last part."""
    policies = {}
    for table in stack.resources("AWS::DynamoDB::GlobalTable").values():
        name = table["Properties"]["TableName"].rsplit("-", 1)[-1]
        (replica,) = [r for r in table["Properties"]["Replicas"] if "ResourcePolicy" in r] or [{}]
        if replica:
            policies[name] = replica["ResourcePolicy"]["PolicyDocument"]["Statement"]
    return policies


def test_given_cells_in_several_accounts_then_their_tables_admit_only_the_deployments_movers(
    each_cells_app,
):
    env = each_cells_app.config.env
    movers = {
        "StringEquals": {"aws:PrincipalOrgID": each_cells_app.cells.organization},
        "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::*:role/messenger-{env}-*-mover"},
    }
    sizes = set()
    for cell in each_cells_app.cells.cells:
        stack = each_cells_app.cell(cell.cell_id)
        policies = table_policies(stack)
        # Users, Queue and Limits only; no other table admits anyone of another account
        assert sorted(policies) == sorted(TABLES)
        for table, statements in policies.items():
            # The table's own ARN (by its name), for the organization's Mover roles only
            copy = statements[0]
            assert copy["Sid"] == "PeerMoversCopyIn"
            assert copy["Principal"] == {"AWS": "*"} and copy["Condition"] == movers
            assert copy["Action"] == "dynamodb:BatchWriteItem"
            resource = json.dumps(copy["Resource"])
            assert f"table/messenger-{env}-{cell.cell_id}-{table}" in resource
            if table == "users":
                # And on Users the move records and the range state, by key only
                items = statements[1]
                assert sorted(_as_list(items["Action"])) == [
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ]
                assert items["Condition"] == {
                    **movers,
                    "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MOVE", "CELL"]},
                }
                assert items["Resource"] == copy["Resource"]
            else:
                assert len(statements) == 1
            # Nothing per peer: the same few statements, far under DynamoDB's 20 KB
            sizes.add(len(json.dumps(statements)))
        # Cross-account access is refused under the AWS-managed key: DynamoDB's own key
        for table in stack.resources("AWS::DynamoDB::GlobalTable").values():
            name = table["Properties"]["TableName"].rsplit("-", 1)[-1]
            sse = table["Properties"].get("SSESpecification", {})
            if name in TABLES:
                assert sse.get("SSEType") != "KMS", name
    assert max(sizes) < 2048


def test_given_cells_in_one_account_then_no_table_has_a_resource_policy(tmp_path_factory):
    # Two cells of one account: their Movers' own roles suffice, as without an organization
    app = synthesized_cells_once(
        {"env": "dev", "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C0_ACCOUNT}/eu-west-1"},
        tmp_path_factory,
    )
    for cell in app.cells.cells:
        stack = app.cell(cell.cell_id)
        assert table_policies(stack) == {}
        assert mover_of(app, cell.cell_id)  # a Mover all the same
        for table in stack.resources("AWS::DynamoDB::GlobalTable").values():
            assert table["Properties"]["SSESpecification"]["SSEType"] == "KMS"
