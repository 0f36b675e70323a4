"""A stack made of parts whose resources keep the logical ids they had without them.

CloudFormation knows a resource by its logical id, and CDK derives that id from the
resource's construct path. Moving a resource into a construct of its own changes the path,
so the next deploy would replace it: a table comes back empty, the API comes back with
another URL, a function with a fixed name fails to deploy at all.

A `StackPart` is a construct for the code's sake only: `PartedStack` leaves the parts' ids
out of the paths it derives logical ids from, so `Tables/Users` is `Users0A0EEA89` exactly
as `Users` was when the stack made its tables itself. Two parts may therefore not hold
constructs of the same id; CDK refuses the template if they do (a resource id twice).
Everything outside a part keeps CDK's own scheme: `make_unique_id` is CDK's (its
`makeUniqueId`, private to aws-cdk-lib), and `tests/infra` checks that they agree.
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import CfnElement, Stack
from constructs import Construct

# CDK's rules (core/lib/private/uniqueid.ts): a component "Default" is left out of the
# path; "Resource" is left out of the readable part but kept in the hash.
HIDDEN_ID = "Default"
HIDDEN_FROM_HUMAN_ID = "Resource"
PATH_SEPARATOR = "/"
HASH_LENGTH = 8
MAX_HUMAN_LENGTH = 240
MAX_ID_LENGTH = 255
_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


class StackPart(Construct):
    """A part of a `PartedStack`: its id is not part of its resources' logical ids."""


class PartedStack(Stack):
    """A stack whose `StackPart`s are transparent to its resources' logical ids."""

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        scopes = cfn_element.node.scopes
        below = scopes[scopes.index(self) + 1 :]
        if not any(isinstance(scope, StackPart) for scope in below):
            return super()._allocate_logical_id(cfn_element)
        return make_unique_id(
            [scope.node.id for scope in below if not isinstance(scope, StackPart)]
        )


def make_unique_id(components: list[str]) -> str:
    """CDK's logical id of the construct path `components` (below the stack)."""
    components = [component for component in components if component != HIDDEN_ID]
    if not components:
        raise ValueError("a logical id needs at least one path component")
    if len(components) == 1:
        # A top-level resource is named as it is, as an imported template named it.
        candidate = _NON_ALPHANUMERIC.sub("", components[0])
        if len(candidate) <= MAX_ID_LENGTH:
            return candidate
    digest = hashlib.md5(PATH_SEPARATOR.join(components).encode(), usedforsecurity=False)
    human = "".join(
        _NON_ALPHANUMERIC.sub("", component)
        for component in _without_repeats(components)
        if component != HIDDEN_FROM_HUMAN_ID
    )
    return human[:MAX_HUMAN_LENGTH] + digest.hexdigest()[:HASH_LENGTH].upper()


def _without_repeats(components: list[str]) -> list[str]:
    """`L1/Pipeline/Pipeline` reads `L1Pipeline`: a component that ends the one before it
    is dropped."""
    kept: list[str] = []
    for component in components:
        if not kept or not kept[-1].endswith(component):
            kept.append(component)
    return kept
