"""The cell's Relay (docs/protocol.md §6): the one function its peer cells invoke.

Named (`messenger-<env>-<cell>[-standby]-relay`), so that one grant covers every Relay of
the deployment (infra/cells.py `relay_pattern`). A caller in another account also needs the
Relay's word: one resource-policy statement for the deployment's AWS Organization, never
one per peer or per account (docs/scale.md "The mesh"). Which cell made a call is not an
IAM question: the Relay checks each call's signature against the caller's published key.

Its reserved concurrency is the most of this account's Lambda concurrency the peers may
take (`RELAY_RESERVED_CONCURRENCY`); each calling cell has a budget of its own inside it
(messenger.logic.relay_callers).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from infra.cells import CellPlacement
from infra.functions import Functions
from messenger.contract import RELAY, RELAY_RESERVED_CONCURRENCY, Env

# All a peer cell's functions may do with this cell's Relay.
INVOKE_ACTION = "lambda:InvokeFunction"


class Relay:
    """The Relay function, and who may invoke it (made by `Functions`, in the stack's own
    scope, as every function is)."""

    def __init__(self, *, cell: CellPlacement, functions: Functions, connections_url: str) -> None:
        self.function: lambda_.IFunction = functions.add(
            RELAY.function_name,
            RELAY.handler,
            RELAY.access,
            function_name=cell.relay_name,
            # No API event tells the Relay where this stage's @connections API is.
            more_environment={Env.CONNECTIONS_ENDPOINT.value: connections_url},
            reserved_concurrency=RELAY_RESERVED_CONCURRENCY,
        )
        # In its own account each caller's role suffices; across accounts, the organization
        # (config refuses cells in several accounts without one).
        organization = cell.cells.organization
        if organization and len(cell.cells.accounts) > 1:
            self.function.add_permission(
                "InvokeByOrganization",
                principal=iam.OrganizationPrincipal(organization),
                action=INVOKE_ACTION,
            )
