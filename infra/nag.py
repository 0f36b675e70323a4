"""Acknowledging cdk-nag findings (v3: CDK's own `Validations` API), one by one.

A finding on a resource that holds a CloudFormation reference is named after the
reference, flattened the way cdk-nag does it (`src/utils/flatten-cfn-reference.ts`):
`arn:<AWS::Partition>:...:<ApiF70053CD>/dev/POST/@connections/*`.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import Construct, IConstruct

# The validation plugin's name: CDK files an acknowledgement under "<plugin>::<finding>".
PLUGIN = "AwsSolutions"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (`RuleId` or `RuleId[Finding]`) on one construct, with why."""
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PLUGIN}::{rule}", reason=reason))


def flattened(scope: Construct, value: str) -> str:
    """A (possibly tokenized) string as cdk-nag spells it in a finding id."""
    return flatten_cfn(Stack.of(scope).resolve(value))


def flatten_cfn(node: Any) -> str:
    """A template value (string, Ref, Fn::GetAtt, Fn::Join...) as one string."""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_cfn(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_cfn(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_cfn(resource)}.{flatten_cfn(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_cfn(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_cfn(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
