"""A published version must change whenever a value it reads changes at deploy time.

CDK names a function's `currentVersion` after a hash of the function's own properties
as they stand in the template. A value that is a reference there hashes as the reference,
not as its value (aws/aws-cdk#25997): when the value changes on deploy, `$LATEST` and
the role follow, but no version is published, and the `live` alias (which API Gateway
invokes in prod) keeps running with the old value. Two such values can reach the
functions' environment:

- a parameter resolved by CloudFormation (`{{resolve:ssm:...}}`, `AWS::SSM::Parameter::Value`):
  refused here; the stack looks SSM parameters up at synth time instead, so their values
  are literals in the template and in the hash;
- the name (or id) of a resource of the stack, which changes when CloudFormation replaces
  it: the properties that make it replace the resource go into the version's hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from aws_cdk import CfnElement, CfnParameter, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

# Per CloudFormation resource type: the properties whose change replaces the resource
# ("Update requires: Replacement" in its reference), as the L1 construct names them.
REPLACING_PROPERTIES: dict[type, tuple[str, ...]] = {
    # A cell's Relay reads its stage's @connections URL, which holds the API's id.
    apigwv2.CfnApi: ("protocol_type",),
    dynamodb.CfnGlobalTable: (
        "table_name",
        "key_schema",
        "attribute_definitions",
        "local_secondary_indexes",
    ),
    # The presence function reads its settle queue's URL, which holds the queue's name.
    sqs.CfnQueue: ("queue_name", "fifo_queue"),
}


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            yield node["Ref"]
        elif "Fn::GetAtt" in node:
            yield node["Fn::GetAtt"][0]
        else:
            for value in node.values():
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _element(stack: Stack, logical_id: str) -> IConstruct:
    for construct in stack.node.find_all():
        if isinstance(construct, CfnElement) and stack.resolve(construct.logical_id) == logical_id:
            return construct
    raise ValueError(f"{logical_id} is not an element of {stack.stack_name}")


def deploy_time_inputs(scope: IConstruct, environment: Mapping[str, str]) -> str:
    """What may change in `environment` at deploy time without changing the template's
    text for it, as a string to mix into the version hash
    (`Function.invalidate_version_based_on`)."""
    stack = Stack.of(scope)
    identities = {}
    for logical_id in sorted(set(_references(stack.resolve(dict(environment))))):
        if logical_id.startswith("AWS::"):
            continue  # pseudo parameters: the same for the stack's whole life
        element = _element(stack, logical_id)
        if isinstance(element, CfnParameter):
            raise ValueError(
                f"a function reads {logical_id}, a value CloudFormation resolves at deploy "
                "time: a published version would keep its old value (aws-cdk#25997); "
                "resolve it at synth time (e.g. StringParameter.value_from_lookup)"
            )
        replacing = next(
            (names for kind, names in REPLACING_PROPERTIES.items() if isinstance(element, kind)),
            None,
        )
        if replacing is None:
            raise ValueError(
                f"a function reads {logical_id} ({element.node.path}): say in "
                "infra/versions.py which of its properties replace it"
            )
        identities[logical_id] = stack.resolve({name: getattr(element, name) for name in replacing})
    return json.dumps(identities, sort_keys=True, default=str)
