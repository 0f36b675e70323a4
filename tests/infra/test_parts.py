"""A stack's parts leave its resources' logical ids as CDK gives them without the parts."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, CfnElement, Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.parts import PartedStack, StackPart, make_unique_id

pytestmark = pytest.mark.infra

# Paths below the stack that exercise each of CDK's rules: a top-level resource, a
# "Resource" child, a repeated component, "Default", and characters CloudFormation
# does not allow in an id.
PATHS = [
    ["Topic"],
    ["Alarms", "Topic"],
    ["Pipeline", "Pipeline", "Topic"],
    ["Group", "Default", "Topic"],
    ["My-Group", "Topic.v2"],
]


def logical_ids(stack: Stack) -> dict[str, str]:
    """Construct path below the stack (parts left out) -> the element's logical id."""
    ids = {}
    for construct in stack.node.find_all():
        if isinstance(construct, CfnElement):
            path = [
                scope.node.id
                for scope in construct.node.scopes[1:]
                if not isinstance(scope, StackPart)
            ]
            ids["/".join(path[1:])] = stack.resolve(construct.logical_id)
    return ids


def build(stack: Stack, parent_of: Any) -> None:
    for path in PATHS:
        scope: Construct = parent_of(stack)
        for component in path[:-1]:
            found = scope.node.try_find_child(component)
            scope = found if isinstance(found, Construct) else Construct(scope, component)
        sns.Topic(scope, path[-1])


def test_given_resources_in_parts_then_their_logical_ids_are_those_without_the_parts():
    app = App()
    plain = Stack(app, "Plain")
    build(plain, lambda stack: stack)
    parted = PartedStack(app, "Parted")
    part = StackPart(parted, "Part")
    build(parted, lambda stack: part)

    assert logical_ids(parted) == logical_ids(plain)
    # and the part's id is in none of them
    assert not any("Part" in logical_id for logical_id in logical_ids(parted).values())


def test_given_cdks_own_ids_then_make_unique_id_computes_each_of_them():
    app = App()
    plain = Stack(app, "Plain")
    build(plain, lambda stack: stack)
    for path, logical_id in logical_ids(plain).items():
        assert make_unique_id(path.split("/")) == logical_id, path


def test_given_two_parts_holding_the_same_id_then_cdk_refuses_the_template():
    app = App()
    stack = PartedStack(app, "Parted")
    sns.Topic(StackPart(stack, "One"), "Topic")
    sns.Topic(StackPart(stack, "Two"), "Topic")
    with pytest.raises(RuntimeError, match="TopicBFC7AF6E"):
        app.synth()
