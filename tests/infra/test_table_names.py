"""A cell's tables are named from its first deploy: adding or removing a standby replaces
nothing (issue 21, "Why" 3).

`TableName` is create-only: were the tables named only once a standby came, deploying
`-c standby:c0=...` on a running cell would replace Users, Queue and Limits with empty
tables. So the templates of the same cells with and without a standby are compared here:
whatever would make CloudFormation replace a stateful resource (its logical id, its type,
a create-only property such as `TableName`, or the key schema) must be the same in both.

A cell deployed before tables were named keeps CloudFormation's names
(`-c tableNames:<cell>=generated`, or the names themselves, which a standby needs).
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import cells_from_context
from messenger.contract import TABLES
from tests.infra.conftest import (
    C0_ACCOUNT,
    C1_ACCOUNT,
    ORGANIZATION,
    STANDBY_DEV_CONTEXT,
    SynthesizedCells,
    synthesized_cells_once,
)
from tests.infra.test_stateful_ids import stateful_resources

pytestmark = pytest.mark.infra

# What a change of replaces a table, beyond the create-only properties the stateful-ids
# record already holds (CloudFormation's schema lists the key schema under the replicas'
# and indexes' paths, which that record leaves out).
REPLACING_PROPERTIES = ("TableName", "KeySchema", "AttributeDefinitions", "LocalSecondaryIndexes")
# Names a cell deployed before tables were named got from CloudFormation.
GENERATED = {
    "Users": "Messenger-dev-c0-Users0A0EEA89-1A2B3C4D5E6F",
    "Queue": "Messenger-dev-c0-Queue4A7E3555-2B3C4D5E6F7A",
    "Limits": "Messenger-dev-c0-LimitsA6AFC87B-3C4D5E6F7A8B",
}
GENERATED_CONTEXT = "Users={Users},Queue={Queue},Limits={Limits}".format(**GENERATED)


def identity(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> what must stay the same for each stateful resource to be kept."""
    found = stateful_resources(template)
    for logical_id, kept in found.items():
        properties = template["Resources"][logical_id].get("Properties", {})
        kept.update({name: properties[name] for name in REPLACING_PROPERTIES if name in properties})
    return found


def replacements(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a deploy from template `before` to `after` would replace or delete."""
    old, new = identity(before), identity(after)
    lines = []
    for logical_id, kept in old.items():
        if logical_id not in new:
            lines.append(f"{logical_id} ({kept['Type']}) is gone: deleted, or orphaned")
            continue
        for name in sorted(set(kept) | set(new[logical_id])):
            if kept.get(name) != new[logical_id].get(name):
                lines.append(
                    f"{logical_id}: {name} {kept.get(name)!r} -> {new[logical_id].get(name)!r} "
                    "replaces it"
                )
    return lines


def cell_template(app: SynthesizedCells, cell_id: str) -> dict[str, Any]:
    template: dict[str, Any] = app.cell(cell_id).json
    return template


def table_names(template: dict[str, Any]) -> dict[str, str | None]:
    return {
        logical_id: resource["Properties"].get("TableName")
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::GlobalTable"
    }


# --- named from the first deploy ------------------------------------------------------------


@pytest.fixture(scope="module")
def without_standby_dev(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedCells:
    """`standby_dev`'s cells, the same order, without the standby."""
    context = {key: value for key, value in STANDBY_DEV_CONTEXT.items() if key != "standby:c0"}
    return synthesized_cells_once(context, tmp_path_factory)


def test_given_a_cell_then_its_table_names_are_the_same_with_and_without_a_standby(
    without_standby_dev, standby_dev
):
    without = cell_template(without_standby_dev, "c0")
    with_standby = cell_template(standby_dev, "c0")
    assert table_names(without) == table_names(with_standby)
    assert sorted(table_names(without).values()) == sorted(  # type: ignore[type-var]
        f"messenger-dev-c0-{spec.logical_name.lower()}" for spec in TABLES
    )


@pytest.mark.parametrize("direction", ["adding", "removing"])
def test_given_a_standby_added_or_removed_then_no_stateful_resource_is_replaced(
    without_standby_dev, standby_dev, direction
):
    apps = (
        (without_standby_dev, standby_dev)
        if direction == "adding"
        else (standby_dev, without_standby_dev)
    )
    before, after = apps
    for name, stack in before.stacks.items():
        if name not in after.stacks:
            continue  # the standby's own stack comes or goes as a whole
        assert replacements(stack.json, after.stacks[name].json) == [], name


def test_given_a_renamed_table_or_a_changed_key_then_the_comparison_says_it_replaces(cells_dev):
    # A check that cannot fail proves nothing: tamper with a copy of the template
    before = cell_template(cells_dev, "c0")
    after: dict[str, Any] = {"Resources": dict(before["Resources"])}
    users = next(key for key in table_names(before) if key.startswith("Users"))
    queue = next(key for key in table_names(before) if key.startswith("Queue"))
    renamed = {**before["Resources"][users]}
    renamed["Properties"] = {**renamed["Properties"], "TableName": "messenger-dev-c0-other"}
    after["Resources"][users] = renamed
    rekeyed = {**before["Resources"][queue]}
    rekeyed["Properties"] = {**rekeyed["Properties"], "KeySchema": []}
    after["Resources"][queue] = rekeyed
    moved = next(key for key in table_names(before) if key.startswith("Limits"))
    after["Resources"]["Moved" + moved] = after["Resources"].pop(moved)
    found = replacements(before, after)
    assert any(line.startswith(f"{users}: TableName") for line in found), found
    assert any(line.startswith(f"{queue}: KeySchema") for line in found), found
    assert any(line.startswith(f"{moved} (AWS::DynamoDB::GlobalTable) is gone") for line in found)


# --- cells whose tables were created unnamed ----------------------------------------------


@pytest.fixture(scope="module")
def unnamed_dev(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedCells:
    context = {key: value for key, value in STANDBY_DEV_CONTEXT.items() if key != "standby:c0"} | {
        "tableNames:c0": "generated"
    }
    return synthesized_cells_once(context, tmp_path_factory)


@pytest.fixture(scope="module")
def unnamed_standby_dev(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedCells:
    context = {**STANDBY_DEV_CONTEXT, "tableNames:c0": GENERATED_CONTEXT}
    return synthesized_cells_once(context, tmp_path_factory)


def test_given_tables_created_unnamed_then_they_stay_unnamed_and_a_standby_replaces_nothing(
    unnamed_dev, unnamed_standby_dev
):
    # The cell's template leaves TableName out, as it did before tables were named
    assert set(table_names(cell_template(unnamed_dev, "c0")).values()) == {None}
    # and the other cell is named as any new cell is
    assert None not in table_names(cell_template(unnamed_dev, "c1")).values()
    # Its Movers' resource policies name each table as "*", itself (its name is unknown)
    stack = unnamed_dev.cell("c0")
    resources = [
        {
            statement["Resource"]
            for statement in replica["ResourcePolicy"]["PolicyDocument"]["Statement"]
        }
        for table in stack.resources("AWS::DynamoDB::GlobalTable").values()
        for replica in table["Properties"]["Replicas"]
        if "ResourcePolicy" in replica
    ]
    assert resources == [{"*"}] * 3
    # Adding the standby with the names given replaces nothing
    for name, stack in unnamed_dev.stacks.items():
        assert replacements(stack.json, unnamed_standby_dev.stacks[name].json) == [], name


def test_given_tables_created_unnamed_then_the_standby_runs_on_their_replicas_by_name(
    unnamed_standby_dev,
):
    standby = unnamed_standby_dev.stacks["Messenger-dev-c0-standby"]
    variables = [
        resource["Properties"]["Environment"]["Variables"]
        for resource in standby.resources("AWS::Lambda::Function").values()
        if resource["Properties"].get("Handler", "").startswith("messenger.")
    ]
    assert variables
    for environment in variables:
        assert environment["USERS_TABLE"] == GENERATED["Users"]
        assert environment["QUEUE_TABLE"] == GENERATED["Queue"]
        # Limits is the standby's own, never a replica
        assert environment["LIMITS_TABLE"] != GENERATED["Limits"]


def context(**extra: str) -> Any:
    values = {
        "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
        "organization": ORGANIZATION,
        **extra,
    }
    return values.get


def test_a_standby_of_a_cell_with_unnamed_tables_needs_their_names():
    with pytest.raises(ValueError, match="UsersTableName") as refused:
        cells_from_context(
            context(**{"tableNames:c0": "generated", "standby:c0": f"{C0_ACCOUNT}/us-west-2"})
        )
    assert "tableNames:c0=Users=" in str(refused.value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("Users=a-users,Queue=a-queue", "each of the cell's tables once"),
        ("Users=a-users,Queue=a-queue,Limits=a-limits,Other=x-other", "each of the cell's"),
        ("Users=a-users,Queue=a-queue,Limits=no spaces", "not <table>=<name>"),
        ("whatever", "not <table>=<name>"),
    ],
)
def test_malformed_table_names_are_refused(value, says):
    with pytest.raises(ValueError, match=says):
        cells_from_context(context(**{"tableNames:c0": value}))


def test_table_names_of_the_single_cell_are_read_too():
    get = {"region": "us-east-1", "tableNames:c0": "generated"}.get
    (cell,) = cells_from_context(get).cells
    assert cell.unnamed_tables is not None and cell.unnamed_tables.names == ()


# --- where standbys may run ---------------------------------------------------------------


def test_a_standby_in_another_cells_account_and_region_is_refused():
    # c2 is in c0's account; c0's standby may not run where c2 does
    get = {
        "cells": f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1,c2:{C0_ACCOUNT}/eu-west-2",
        "standby:c0": f"{C0_ACCOUNT}/eu-west-2",
    }.get
    with pytest.raises(ValueError, match="standbys included, but 111111111111/eu-west-2"):
        cells_from_context(get)


def test_two_standbys_in_one_account_and_region_are_refused():
    get = {
        # c2 first: the directory's region (eu-west-1) has no side of a standby
        "cells": f"c2:{C1_ACCOUNT}/eu-west-1,c0:{C0_ACCOUNT}/us-east-1,c1:{C0_ACCOUNT}/us-west-1",
        "standby:c0": f"{C0_ACCOUNT}/eu-west-2",
        "standby:c1": f"{C0_ACCOUNT}/eu-west-2",
    }.get
    with pytest.raises(ValueError, match="already runs c0's standby"):
        cells_from_context(get)


@pytest.mark.parametrize(
    "standby",
    [
        # c1's standby in the directory's region (c0's, the first cell's)
        {"standby:c1": f"{C1_ACCOUNT}/us-east-1"},
        # c0, whose primary is in the directory's region, with a standby elsewhere
        {"standby:c0": f"{C0_ACCOUNT}/us-west-2"},
    ],
)
def test_a_cell_with_a_standby_and_a_side_in_the_directorys_region_is_refused(standby):
    with pytest.raises(ValueError, match="the directory lives in us-east-1"):
        cells_from_context(context(**standby))


def test_the_failover_commands_reading_of_a_deployment_leaves_the_placement_rules_out():
    # A deployment made before the rules must still switch over (infra/failover.py)
    get = context(**{"standby:c0": f"{C0_ACCOUNT}/us-west-2"})
    with pytest.raises(ValueError, match="the directory lives in us-east-1"):
        cells_from_context(get)
    (c0, _) = cells_from_context(get, standby_placement=False).cells
    assert c0.standby is not None and c0.standby.region == "us-west-2"
