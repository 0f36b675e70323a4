"""Nothing in a cell grows with the number of cells (docs/protocol.md §6, docs/scale.md "The
mesh"): one cell's stack synthesized in deployments of 2 and of 150 cells, and in one of
2,000 cells, compared.

Every policy, permission and variable that named peers is gone: the templates of c0 in a
deployment of 2 and of 150 cells are the same byte for byte but for the shard map's
variable. That variable is the one thing left that grows (about 17 bytes a cell): at 2,000
cells it no longer fits Lambda's 4 KB environment, and the stack refuses to synthesize,
saying so (docs/scale.md "The mesh" says what takes it out: reading the map from the
directory, as peers' Relays already are).
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
from infra.stack import MessengerStack
from messenger.contract import Env
from tests.infra.conftest import NO_BUNDLING, ORGANIZATION

pytestmark = [pytest.mark.infra, pytest.mark.slow]

# AWS's limits for what a cell's stack holds.
TEMPLATE_BYTES = 1_000_000  # a template uploaded through S3, as cdk deploy does
ENVIRONMENT_BYTES = 4096  # a Lambda function's variables, all together
INLINE_POLICY_BYTES = 10_240  # a role's inline policies, all together (IAM quotas)
LAMBDA_RESOURCE_POLICY_BYTES = 20_480


def _context(count: int) -> dict[str, Any]:
    """A deployment of `count` cells, one per account (all in one region), in an org."""
    cells = ",".join(f"c{n}:{100000000000 + n}/us-east-1" for n in range(count))
    return {**NO_BUNDLING, "env": "dev", "cells": cells, "organization": ORGANIZATION}


def _placement(count: int, app: App) -> CellPlacement:
    get = app.node.try_get_context
    config = config_from_context(get)
    cells = cells_from_context(get)
    return CellPlacement(env=config.env, cell=cells.cells[0], cells=cells, relay_qualifier=None)


def cell_template(count: int, outdir: Path) -> dict[str, Any]:
    """c0's stack in a deployment of `count` cells, as `cdk synth` writes it."""
    app = App(context={**cdk_json_context(), **_context(count)}, outdir=str(outdir))
    placement = _placement(count, app)
    config = config_from_context(app.node.try_get_context)
    name = config.cell_stack_name("c0")
    MessengerStack(app, name, config=config, cell=placement)
    app.synth()
    template: dict[str, Any] = json.loads((outdir / f"{name}.template.json").read_text())
    return template


def _without_shard_map(template: dict[str, Any]) -> str:
    # The map as the functions' variable and as the directory entry's property (a changed
    # map rewrites the entry, so that the directory merges it)
    return re.sub(r'"65536:0-[^"]*"', '"<shard map>"', json.dumps(template, sort_keys=True))


def _sizes(template: dict[str, Any]) -> dict[str, int]:
    resources = template["Resources"]
    environments = [
        len(json.dumps(resource["Properties"]["Environment"]["Variables"]))
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::Function" and "Environment" in resource["Properties"]
    ]
    policies = [
        len(json.dumps(resource["Properties"]["PolicyDocument"]))
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
    ]
    permissions = [
        len(json.dumps(resource["Properties"]))
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::Permission"
    ]
    return {
        "template": len(json.dumps(template)),
        "largest environment": max(environments),
        "largest policy": max(policies),
        "policies": sum(policies),
        "permissions": len(permissions),
        "permission bytes": sum(permissions),
    }


def test_a_cells_stack_is_the_same_in_2_and_150_cells_but_for_the_shard_map(
    tmp_path: Path,
) -> None:
    # Given c0's stack in a deployment of 2 cells and in one of 150
    small = cell_template(2, tmp_path / "2")
    large = cell_template(150, tmp_path / "150")
    # Then they are the same, byte for byte, but for the shard map's variable
    assert _without_shard_map(small) == _without_shard_map(large)
    sizes = {2: _sizes(small), 150: _sizes(large)}
    print(json.dumps(sizes))  # the figures docs/scale.md quotes (pytest -s)
    for name in ("largest policy", "policies", "permissions", "permission bytes"):
        assert sizes[2][name] == sizes[150][name], name
    # And everything is within AWS's limits, far from them but for the environment
    for size in sizes.values():
        assert size["template"] < TEMPLATE_BYTES
        assert size["largest environment"] < ENVIRONMENT_BYTES
        assert size["largest policy"] < INLINE_POLICY_BYTES
        assert size["permission bytes"] < LAMBDA_RESOURCE_POLICY_BYTES
    # The Relay's resource policy is one statement (the organization), whatever the count
    relay_permissions = [
        resource["Properties"]
        for resource in large["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"].get("PrincipalOrgID") == ORGANIZATION
    ]
    assert len(relay_permissions) == 1


def test_at_2000_cells_only_the_shard_map_does_not_fit_and_synthesis_says_so() -> None:
    # Given a deployment of 2,000 cells (65,536 shards: 32 or 33 each)
    app = App(context={**cdk_json_context(), **_context(2000)})
    placement = _placement(2000, app)
    # Then the one variable that grows with the cells, the shard map, is refused by name
    with pytest.raises(ValueError, match=r"cell variables of c0 take .* fewer shard ranges"):
        placement.environment()
    shard_map = placement.cells.shard_map.to_compact()
    assert len(shard_map) > ENVIRONMENT_BYTES
    # And without it, what a cell's functions learn of the mesh is three fixed names
    mesh = {
        Env.MESH_BUCKET.value: placement.directory.bucket,
        Env.MESH_BUCKET_REGION.value: placement.directory.region,
        Env.MESH_BUCKET_OWNER.value: placement.directory.account,
    }
    assert sum(len(name) + len(value) for name, value in mesh.items()) < 200
