"""Nothing in a cell grows with the number of cells (docs/protocol.md §6, docs/scale.md "The
mesh"): one cell's stack synthesized in deployments of 2, of 150 and of 2,000 cells, and the
directory's stack of 2,000 cells, measured against AWS's limits.

Every policy, permission and variable that named peers is gone, and so is the shard map: a
cell reads it from the signed directory (messenger.dal.directory_map). The templates of c0 in
a deployment of 2 and of 150 cells are the same byte for byte. The directory's stack admits
the cells of other accounts by their organization and their roles' names and tags, reads
every entry by one pattern, and is given the first shard map as one property of one
resource (written to one object, `seed/shard-map.json`): the one thing in it that grows
with the cells, about 20 bytes a cell, 40 KB of its template at 2,000 cells.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from infra.app import cdk_json_context
from infra.cells import CellPlacement
from infra.config import cells_from_context, config_from_context
from infra.directory import DirectoryStack
from infra.mesh import admit_relay_record_writers
from infra.stack import MessengerStack
from tests.infra.conftest import NO_BUNDLING, ORGANIZATION

pytestmark = [pytest.mark.infra, pytest.mark.slow]

# AWS's limits for what a stack holds ("CloudFormation quotas", "Lambda quotas", "IAM and
# AWS STS quotas", "Amazon S3 bucket policies").
TEMPLATE_BYTES = 1_000_000  # a template uploaded through S3, as cdk deploy does
RESOURCES = 500  # resources in one stack
ENVIRONMENT_BYTES = 4096  # a Lambda function's variables, all together
INLINE_POLICY_BYTES = 10_240  # a role's inline policies, all together
BUCKET_POLICY_BYTES = 20_480
LAMBDA_RESOURCE_POLICY_BYTES = 20_480
TABLE_POLICY_BYTES = 20_480  # a DynamoDB resource-based policy
# A publicly readable directory key (what `-c directoryKey` gives the cells).
DIRECTORY_KEY = "A" * 42 + "E"


def _context(count: int) -> dict[str, Any]:
    """A deployment of `count` cells, one per account (all in one region), in an org."""
    cells = ",".join(f"c{n}:{100000000000 + n}/us-east-1" for n in range(count))
    return {
        **NO_BUNDLING,
        "env": "dev",
        "cells": cells,
        "organization": ORGANIZATION,
        "directoryKey": DIRECTORY_KEY,
    }


def synthesize(count: int, outdir: Path, directory: bool = False) -> dict[str, dict[str, Any]]:
    """c0's stack (and the directory's) in a deployment of `count` cells, as `cdk synth`
    writes them: template name -> template."""
    app = App(context={**cdk_json_context(), **_context(count)}, outdir=str(outdir))
    get = app.node.try_get_context
    config = config_from_context(get)
    cells = cells_from_context(get)
    placement = CellPlacement(
        env=config.env, cell=cells.cells[0], cells=cells, relay_qualifier=None
    )
    names = [config.cell_stack_name("c0")]
    MessengerStack(app, names[0], config=config, cell=placement)
    if directory:
        stack = DirectoryStack(app, config.directory_stack_name, config=config, cells=cells)
        assert cells.organization is not None
        admit_relay_record_writers(stack.bucket, config.env, cells.organization)
        names.append(config.directory_stack_name)
    app.synth()
    return {name: json.loads((outdir / f"{name}.template.json").read_text()) for name in names}


def _of_type(template: dict[str, Any], cfn_type: str) -> list[dict[str, Any]]:
    return [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == cfn_type
    ]


def _largest(sizes: list[int]) -> int:
    return max(sizes, default=0)


def sizes_of(template: dict[str, Any]) -> dict[str, int]:
    """What AWS limits, measured as CloudFormation gets it (JSON, no spaces)."""

    def size(value: Any) -> int:
        return len(json.dumps(value, separators=(",", ":")))

    policies_by_role: dict[str, int] = {}
    for policy in _of_type(template, "AWS::IAM::Policy"):
        for role in policy.get("Roles", []):
            key = json.dumps(role, sort_keys=True)
            policies_by_role[key] = policies_by_role.get(key, 0) + size(policy["PolicyDocument"])
    return {
        "template": size(template),
        "resources": len(template["Resources"]),
        "largest environment": _largest(
            [
                size(function["Environment"]["Variables"])
                for function in _of_type(template, "AWS::Lambda::Function")
                if "Environment" in function
            ]
        ),
        "largest role policies": _largest(list(policies_by_role.values())),
        "largest bucket policy": _largest(
            [
                size(policy["PolicyDocument"])
                for policy in _of_type(template, "AWS::S3::BucketPolicy")
            ]
        ),
        "largest table policy": _largest(
            [
                size(replica["ResourcePolicy"]["PolicyDocument"])
                for table in _of_type(template, "AWS::DynamoDB::GlobalTable")
                for replica in table["Replicas"]
                if "ResourcePolicy" in replica
            ]
        ),
        "lambda permissions": len(_of_type(template, "AWS::Lambda::Permission")),
        "lambda permission bytes": sum(
            size(permission) for permission in _of_type(template, "AWS::Lambda::Permission")
        ),
    }


def assert_within_limits(sizes: dict[str, int]) -> None:
    assert sizes["template"] < TEMPLATE_BYTES
    assert sizes["resources"] < RESOURCES
    assert sizes["largest environment"] < ENVIRONMENT_BYTES
    assert sizes["largest role policies"] < INLINE_POLICY_BYTES
    assert sizes["largest bucket policy"] < BUCKET_POLICY_BYTES
    assert sizes["largest table policy"] < TABLE_POLICY_BYTES
    assert sizes["lambda permission bytes"] < LAMBDA_RESOURCE_POLICY_BYTES


def test_a_cells_stack_is_the_same_in_2_and_150_cells(tmp_path: Path) -> None:
    # Given c0's stack in a deployment of 2 cells and in one of 150
    (small,) = synthesize(2, tmp_path / "2").values()
    (large,) = synthesize(150, tmp_path / "150").values()
    # Then they are the same, byte for byte: no shard map, no peer
    assert json.dumps(small, sort_keys=True) == json.dumps(large, sort_keys=True)
    assert not re.search(r"65536:0-", json.dumps(large))
    # The Relay's resource policy is one statement (the organization), whatever the count
    relay_permissions = [
        permission
        for permission in _of_type(large, "AWS::Lambda::Permission")
        if permission.get("PrincipalOrgID") == ORGANIZATION
    ]
    assert len(relay_permissions) == 1


def test_at_2000_cells_a_cell_and_the_directory_are_within_aws_limits(tmp_path: Path) -> None:
    # Given a deployment of 2,000 cells, each in its own account (65,536 shards: 32 or 33
    # each), and the same deployment of 2 cells
    large = synthesize(2000, tmp_path / "2000", directory=True)
    small = synthesize(2, tmp_path / "2", directory=True)
    cell_name, directory_name = list(large)
    sizes = {
        "cell": sizes_of(large[cell_name]),
        "directory": sizes_of(large[directory_name]),
        "directory of 2": sizes_of(small[directory_name]),
    }
    print(json.dumps(sizes))  # the figures docs/scale.md quotes (pytest -s)
    # Then c0's stack is the one of 2 cells, byte for byte
    assert large[cell_name] == small[cell_name]
    # And every template, environment and policy is within AWS's limits
    for measured in sizes.values():
        assert_within_limits(measured)
    # And in the directory's stack nothing but the seeded map grows with the cells: the
    # same resources, policies and permissions as for 2 cells
    for name in (
        "resources",
        "largest environment",
        "largest role policies",
        "largest bucket policy",
        "lambda permissions",
        "lambda permission bytes",
    ):
        assert sizes["directory"][name] == sizes["directory of 2"][name], name
    (seed,) = _of_type(large[directory_name], "Custom::DirectorySeed")
    grown = sizes["directory"]["template"] - sizes["directory of 2"]["template"]
    assert grown == len(seed["ShardMap"]) - len(
        _of_type(small[directory_name], "Custom::DirectorySeed")[0]["ShardMap"]
    )
    assert grown < 25 * 2000  # ~20 bytes a cell: "c1234" and its range
