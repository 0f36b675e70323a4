"""Resources that hold data keep their identity: a changed logical id replaces the resource.

CloudFormation knows a resource by its logical id. Give a table another one (by moving
its construct, or renaming it) and the next deploy creates a new, empty table and deletes
the old one (dev) or orphans it (prod): the users' data is gone from the deployment. The
same goes for a change to a create-only property, such as a `TableName`.

So the stateful resources of every kind of deployment the app synthesizes are recorded in
`stateful_resources.json`: per stack, each one's logical id, type, deletion and
replacement policies, and the create-only properties that are set (CloudFormation's
resource schemas, as cfn-lint ships them, say which those are). Any difference fails.

When a difference is intended (a new table, a bucket that goes), say so by recording the
templates anew and committing the fixture with the change that explains it:

    .venv/bin/python -m tests.infra.test_stateful_ids
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from infra.app import build_app
from messenger.contract import TABLES
from tests.infra.conftest import (
    CELLS_DEV_CONTEXT,
    CELLS_PROD_CONTEXT,
    DEV_CONTEXT,
    DIRECTORY_TWO_REGIONS_CONTEXT,
    NO_BUNDLING,
    PROD_CONTEXT,
    STANDBY_DEV_CONTEXT,
    STANDBY_PROD_CONTEXT,
)

pytestmark = pytest.mark.infra

FIXTURE = Path(__file__).with_name("stateful_resources.json")
# Every kind of deployment the app synthesizes, by the name of its conftest fixture: a
# single stack (dev, prod), cells (two; three in prod), cells with a standby, and the
# directory in two regions.
DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "dev": DEV_CONTEXT,
    "prod": PROD_CONTEXT,
    "cells_dev": CELLS_DEV_CONTEXT,
    "cells_prod": CELLS_PROD_CONTEXT,
    "standby_dev": STANDBY_DEV_CONTEXT,
    "standby_prod": STANDBY_PROD_CONTEXT,
    "directory_two_regions": DIRECTORY_TWO_REGIONS_CONTEXT,
}
# What holds data, or keys to it: replacing one loses what it held.
STATEFUL_TYPES = (
    "AWS::DynamoDB::GlobalTable",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::KMS::ReplicaKey",
    "AWS::Logs::LogGroup",
    "AWS::SecretsManager::Secret",
    # The presence function's settle queue and its dead letters (flaps, poison records).
    "AWS::SQS::Queue",
)
# The create-only properties are the same in every region; one region's schemas answer.
SCHEMA_REGION = "us-east-1"
POLICIES = ("DeletionPolicy", "UpdateReplacePolicy")


def create_only_properties(cfn_type: str) -> tuple[str, ...]:
    """The top-level properties whose change makes CloudFormation replace the resource."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, cfn_type).schema
    pointers = schema.get("createOnlyProperties") or []
    return tuple(pointer.split("/")[2] for pointer in pointers if pointer.count("/") == 2)


def stateful_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> what must not change for a stateful resource to stay the same one."""
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        cfn_type = resource["Type"]
        if cfn_type not in STATEFUL_TYPES:
            continue
        properties = resource.get("Properties", {})
        found[logical_id] = {
            "Type": cfn_type,
            **{policy: resource[policy] for policy in POLICIES if policy in resource},
            **{
                name: properties[name]
                for name in create_only_properties(cfn_type)
                if name in properties
            },
        }
    return found


def snapshot(outdir: Path) -> dict[str, dict[str, Any]]:
    """Stack (artifact id) -> its stateful resources, for every template in `outdir`."""
    stacks = {
        path.name.removesuffix(".template.json"): stateful_resources(json.loads(path.read_text()))
        for path in sorted(outdir.glob("*.template.json"))
    }
    return {stack: resources for stack, resources in stacks.items() if resources}


def differences(recorded: dict[str, Any], synthesized: dict[str, Any]) -> list[str]:
    """What changed, one line per resource, worded by what a deploy would do."""
    lines = []
    for stack in sorted(set(recorded) | set(synthesized)):
        before, after = recorded.get(stack, {}), synthesized.get(stack, {})
        for logical_id in sorted(set(before) | set(after)):
            if logical_id not in after:
                lines.append(
                    f"{stack}: {logical_id} ({before[logical_id]['Type']}) is gone: a deploy "
                    "deletes it, or orphans it where it is retained"
                )
            elif logical_id not in before:
                lines.append(f"{stack}: {logical_id} ({after[logical_id]['Type']}) is new")
            elif before[logical_id] != after[logical_id]:
                lines.append(
                    f"{stack}: {logical_id} changed from {before[logical_id]} to "
                    f"{after[logical_id]}: a create-only property replaces the resource"
                )
    return lines


def recorded() -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(FIXTURE.read_text())
    return fixture


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_given_a_deployment_then_its_stateful_resources_are_the_recorded_ones(request, deployment):
    synthesized = request.getfixturevalue(deployment)
    found = snapshot(synthesized.outdir)
    changed = differences(recorded()[deployment], found)
    assert not changed, (
        f"the stateful resources of {deployment} changed (if intended, record them anew: "
        "python -m tests.infra.test_stateful_ids):\n" + "\n".join(changed)
    )


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_given_the_record_then_every_stack_with_tables_has_each_contract_table(deployment):
    # A record that lost its tables (a type renamed, a filter too strict) would compare
    # nothing at all; the primary stacks must each hold the contract's tables.
    tables = [
        logical_id
        for resources in recorded()[deployment].values()
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::DynamoDB::GlobalTable"
    ]
    assert tables
    for spec in TABLES:
        assert any(logical_id.startswith(spec.logical_name) for logical_id in tables), spec


def test_given_the_record_then_it_covers_every_deployment_and_no_other():
    assert set(recorded()) == set(DEPLOYMENTS)


def test_given_a_resource_renamed_then_the_comparison_names_what_a_deploy_would_do():
    before = {"Messenger-dev": {"Users0A0EEA89": {"Type": "AWS::DynamoDB::GlobalTable"}}}
    after = {"Messenger-dev": {"TablesUsers1234ABCD": {"Type": "AWS::DynamoDB::GlobalTable"}}}
    assert differences(before, after) == [
        "Messenger-dev: TablesUsers1234ABCD (AWS::DynamoDB::GlobalTable) is new",
        "Messenger-dev: Users0A0EEA89 (AWS::DynamoDB::GlobalTable) is gone: a deploy deletes "
        "it, or orphans it where it is retained",
    ]
    named = {
        "Messenger-dev": {
            "Users0A0EEA89": {"Type": "AWS::DynamoDB::GlobalTable", "TableName": "users"}
        }
    }
    (line,) = differences(before, named)
    assert "a create-only property replaces the resource" in line


def record() -> None:
    """Synthesize every deployment and write what it holds as the record."""
    record: dict[str, Any] = {}
    for deployment, context in DEPLOYMENTS.items():
        with tempfile.TemporaryDirectory() as outdir:
            build_app({**NO_BUNDLING, **context}, outdir=outdir).synth()
            record[deployment] = snapshot(Path(outdir))
    FIXTURE.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    record()
