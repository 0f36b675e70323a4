"""A cell's standby (docs/protocol.md §7, FAILOVER.md) in the templates: global tables, the
standby's stack on their replicas, both Relays known to the peers, the automated path.

Names and ARNs are written out from the design, not computed with infra/cells.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import cells_from_context
from infra.nag import flatten_cfn
from messenger.contract import RELAY, Env
from tests.infra.conftest import (
    C0_ACCOUNT,
    C1_ACCOUNT,
    ORGANIZATION,
    Synthesized,
    SynthesizedCells,
)
from tests.infra.test_api import _refs
from tests.infra.test_permissions import grants_of, statements_of

pytestmark = pytest.mark.infra

C0_RELAY = "arn:aws:lambda:us-east-1:111111111111:function:messenger-dev-c0-relay"
C0_STANDBY_RELAY = "arn:aws:lambda:us-west-2:111111111111:function:messenger-dev-c0-standby-relay"
C1_RELAY = "arn:aws:lambda:eu-west-1:222222222222:function:messenger-dev-c1-relay"
TABLE_NAMES = {
    "Users": "messenger-dev-c0-users",
    "Queue": "messenger-dev-c0-queue",
    "Limits": "messenger-dev-c0-limits",
}
# The standby's own Limits table (rate limits are per region, never replicated).
STANDBY_LIMITS = "messenger-dev-c0-standby-limits"


def _logical_id(resource: dict[str, Any], stack: Synthesized) -> str:
    (found,) = (key for key, value in stack.json["Resources"].items() if value is resource)
    return found


def functions_of(stack: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler", "").startswith("messenger.")
    }


def artifacts(app: SynthesizedCells) -> dict[str, Any]:
    found: dict[str, Any] = app.manifest()["artifacts"]
    return found


# --- the stacks ---------------------------------------------------------------------


def test_given_a_standby_then_it_is_a_stack_in_its_region_after_the_cells_own(standby_dev):
    stacks = artifacts(standby_dev)
    assert stacks["Messenger-dev-c0-standby"]["environment"] == f"aws://{C0_ACCOUNT}/us-west-2"
    assert sorted(standby_dev.stacks["Messenger-dev-c0-standby"].dependencies()) == [
        f"ApiGatewayLogging-{C0_ACCOUNT}-us-west-2",
        "Messenger-dev-c0",
    ]
    # And the cell without a standby has none
    assert "Messenger-dev-c1-standby" not in stacks


def test_given_a_standby_then_the_cells_tables_are_named_global_tables_replicated_there(
    standby_dev,
):
    cell = standby_dev.cell("c0")
    tables = {
        resource["Properties"]["TableName"]: resource["Properties"]
        for resource in cell.resources("AWS::DynamoDB::GlobalTable").values()
    }
    assert sorted(tables) == sorted(TABLE_NAMES.values())
    for name, properties in tables.items():
        regions = sorted(replica["Region"] for replica in properties["Replicas"])
        # Limits stays regional: rate-limit state is per side, never replicated
        assert regions == (
            ["us-east-1"]
            if name == TABLE_NAMES["Limits"]
            else [
                "us-east-1",
                "us-west-2",
            ]
        )
        # The replica keeps the table's recovery and encryption
        for replica in properties["Replicas"]:
            assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    # And a cell without a standby has its tables named too, with no replica
    for resource in standby_dev.cell("c1").resources("AWS::DynamoDB::GlobalTable").values():
        assert resource["Properties"]["TableName"].startswith("messenger-dev-c1-")
        assert [r["Region"] for r in resource["Properties"]["Replicas"]] == ["eu-west-1"]


def test_given_a_standby_then_it_runs_every_function_on_the_replicas_and_its_own_limits(
    standby_dev,
):
    primary = standby_dev.cell("c0")
    standby = standby_dev.stacks["Messenger-dev-c0-standby"]
    # One table of its own, Limits, in its region only: the others are the primary's replicas
    (limits,) = standby.resources("AWS::DynamoDB::GlobalTable").values()
    assert limits["Properties"]["TableName"] == STANDBY_LIMITS
    assert [r["Region"] for r in limits["Properties"]["Replicas"]] == ["us-west-2"]
    # Every function of the primary but its shard mover: moves run from the primary's
    # side (infra/mover.py; docs/scale.md "On AWS")
    primary_functions = [
        name for name in functions_of(primary) if not name.startswith("ShardMover")
    ]
    assert sorted(functions_of(standby)) == sorted(primary_functions)
    own = {**TABLE_NAMES, "Limits": STANDBY_LIMITS}
    for name, properties in functions_of(standby).items():
        variables = properties["Environment"]["Variables"]
        assert variables[Env.USERS_TABLE.value] == TABLE_NAMES["Users"], name
        assert variables[Env.QUEUE_TABLE.value] == TABLE_NAMES["Queue"], name
        assert variables[Env.LIMITS_TABLE.value] == {"Ref": _logical_id(limits, standby)}, name
        assert variables[Env.CELL_ID.value] == "c0", name
        # Its table grants name its region's tables, nothing in the primary's
        for resource in grants_of(standby, name):
            if ":dynamodb:" in resource:
                assert resource.startswith(f"arn:aws:dynamodb:us-west-2:{C0_ACCOUNT}:table/")
                assert resource.split("/")[1] in own.values(), resource
    # Its own API, presence function and alarms
    (api,) = standby.resources("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["Name"] == "Messenger-dev-c0-standby"
    assert standby.resources("AWS::CloudWatch::Alarm")
    outputs = {name: output["Value"] for name, output in standby.json["Outputs"].items()}
    assert flatten_cfn(outputs["WebSocketUrl"]).startswith("wss://<")
    assert outputs["UsersTableName"] == TABLE_NAMES["Users"]


def test_given_a_standby_then_it_never_writes_the_cells_directory_entry(standby_dev):
    # A switch does (infra/failover.py): a deploy of the standby must not move the cell
    standby = standby_dev.stacks["Messenger-dev-c0-standby"]
    assert standby.resources("Custom::DirectoryEntry") == {}
    assert len(standby_dev.cell("c0").resources("Custom::DirectoryEntry")) == 1


# --- the Relays -----------------------------------------------------------------------


def test_given_a_standby_then_its_relay_has_its_name_and_admits_the_organization_only(
    standby_dev,
):
    standby = standby_dev.stacks["Messenger-dev-c0-standby"]
    relay = standby.json["Resources"][RELAY.function_name]["Properties"]
    assert relay["FunctionName"] == "messenger-dev-c0-standby-relay"
    admitted = [
        (permission["Properties"]["Principal"], permission["Properties"]["PrincipalOrgID"])
        for permission in standby.resources("AWS::Lambda::Permission").values()
        if _refs(permission["Properties"]["FunctionName"]) == [RELAY.function_name]
    ]
    assert admitted == [("*", ORGANIZATION)]


def test_given_a_standby_then_each_side_publishes_its_relay_record_and_no_peer_is_named(
    standby_dev,
):
    # Each side of c0 writes its own record: peers find both Relays there
    sides = {
        "Messenger-dev-c0": ("primary", C0_RELAY),
        "Messenger-dev-c0-standby": ("standby", C0_STANDBY_RELAY),
    }
    for stack_name, (side, relay) in sides.items():
        stack = standby_dev.stacks[stack_name]
        ((_, record),) = stack.resources("Custom::RelayRecord").items()
        assert (record["Properties"]["Side"], record["Properties"]["Function"]) == (side, relay)
    # And no function of any side names a peer's Relay; every caller may invoke any Relay
    # of the deployment (the called Relay checks who signed the call)
    for stack in (
        standby_dev.cell("c1"),
        standby_dev.cell("c0"),
        standby_dev.stacks["Messenger-dev-c0-standby"],
    ):
        for name, properties in functions_of(stack).items():
            text = json.dumps(properties["Environment"]["Variables"])
            assert not any(relay in text for relay in (C0_RELAY, C0_STANDBY_RELAY, C1_RELAY)), name
            for statement in statements_of(stack, name):
                if statement.get("Sid") == "InvokePeerRelays":
                    assert statement["Resource"] == (
                        "arn:aws:lambda:*:*:function:messenger-dev-*-relay"
                    ), name


# --- the automated path ---------------------------------------------------------------


def automation(stack: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in stack.json["Resources"].items()
        if logical_id.startswith("Failover")
    }


def test_given_no_auto_failover_then_nothing_switches_by_itself(standby_dev):
    assert automation(standby_dev.stacks["Messenger-dev-c0-standby"]) == {}


def test_given_auto_failover_then_a_probe_an_alarm_and_a_rule_run_the_switch(standby_prod):
    # The probes, their alarms and the composite are tests/infra/test_failover_probe.py's
    stack = standby_prod.stacks["Messenger-prod-c1-standby"]
    handlers = {
        properties["Handler"]: (logical_id, properties)
        for logical_id, resource in automation(stack).items()
        if resource["Type"] == "AWS::Lambda::Function"
        for properties in [resource["Properties"]]
    }
    assert "messenger_directory.probe.probe" in handlers
    switch_id, switch = handlers["messenger_directory.failover.failover"]
    rules = [r["Properties"] for r in stack.resources("AWS::Events::Rule").values()]
    (alarm_id,) = [
        logical_id
        for logical_id, resource in automation(stack).items()
        if resource["Type"] == "AWS::CloudWatch::CompositeAlarm"
        and logical_id.startswith("FailoverPrimaryUnreachable")
    ]

    # The alarm's move to ALARM runs the Failover function, in the standby's region
    (on_alarm,) = [rule for rule in rules if "EventPattern" in rule]
    pattern = on_alarm["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    assert pattern["resources"] == [{"Fn::GetAtt": [alarm_id, "Arn"]}]
    assert [_refs(target["Arn"]) for target in on_alarm["Targets"]] == [[switch_id]]

    # Which switches to this standby: its replica, its URL, the directory's bucket
    variables = switch["Environment"]["Variables"]
    bucket = f"messenger-prod-directory-{C0_ACCOUNT}-us-east-1"
    assert variables["FAILOVER_CELL_ID"] == "c1"
    assert variables["FAILOVER_USERS_TABLE"] == "messenger-prod-c1-users"
    assert flatten_cfn(variables["FAILOVER_URL"]).startswith("wss://<")
    assert (
        variables["FAILOVER_DIRECTORY_BUCKET"],
        variables["FAILOVER_DIRECTORY_REGION"],
        variables["FAILOVER_DIRECTORY_OWNER"],
    ) == (bucket, "us-east-1", C0_ACCOUNT)
    assert switch["ReservedConcurrentExecutions"] == 1
    grants = {r: a for r, a in grants_of(stack, switch_id).items() if not r.startswith("<")}
    assert grants == {
        "arn:aws:dynamodb:eu-central-1:222222222222:table/messenger-prod-c1-users": {
            "dynamodb:UpdateItem",
            "dynamodb:GetItem",
        },
        f"arn:aws:s3:::{bucket}/cells/c1.json": {"s3:PutObject"},
        # Its own stage's `fenced` variable, cleared (docs/protocol.md §7)
        "arn:aws:apigateway:eu-central-1::/apis/<ApiF70053CD>/stages/prod": {"apigateway:PATCH"},
    }
    role = stack.json["Resources"][switch["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert role["RoleName"] == "messenger-prod-c1-failover"


def test_given_auto_failover_then_the_directory_admits_the_standbys_switch(standby_prod):
    directory = standby_prod.directory
    admitted = {
        statement["Sid"]: (statement["Action"], statement["Condition"])
        for resource in directory.resources("AWS::S3::BucketPolicy").values()
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "aws:PrincipalOrgID" in statement.get("Condition", {}).get("StringEquals", {})
        and statement["Sid"].startswith("CellEntry")
    }
    # The entry writers and the standbys' switches write their own cell's entry, the
    # probes read it: by role name pattern and cell tag, one statement for every cell
    in_organization = {"aws:PrincipalOrgID": ORGANIZATION}
    assert admitted == {
        "CellEntryWriters": (
            ["s3:GetObject", "s3:PutObject"],
            {
                "StringEquals": in_organization,
                "ArnLike": {
                    "aws:PrincipalArn": [
                        "arn:aws:iam::*:role/messenger-prod-*-directory-entry",
                        "arn:aws:iam::*:role/messenger-prod-*-failover",
                    ]
                },
            },
        ),
        "CellEntryProbes": (
            "s3:GetObject",
            {
                "StringEquals": in_organization,
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/messenger-prod-*-probe-*"},
            },
        ),
    }


# --- context ---------------------------------------------------------------------------


def context(**extra: str) -> Any:
    values = {"cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1", **extra}
    return values.get


def test_a_standby_in_another_account_is_refused_naming_the_limitation():
    with pytest.raises(ValueError, match="TableV2 makes replicas in its own account only"):
        cells_from_context(context(**{"standby:c0": f"{C1_ACCOUNT}/us-west-2"}))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"{C0_ACCOUNT}/us-east-1", "another region than us-east-1"),
        ("us-west-2", "must be <account>/<region>"),
        (f"{C0_ACCOUNT}/", "must be <account>/<region>"),
    ],
)
def test_a_malformed_standby_is_refused(value, says):
    with pytest.raises(ValueError, match=says):
        cells_from_context(context(**{"standby:c0": value}))
