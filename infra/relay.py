"""The cell's Relay (docs/protocol.md §6): the one function its peer cells invoke.

Named (`messenger-<env>-<cell>[-standby]-relay`), so that peers know its ARN at synth time;
each caller's own role names it (`Access.RELAY`), and a caller in another account needs
the Relay's word too: a resource policy statement per peer account.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from infra.cells import CellPlacement
from infra.functions import Functions
from messenger.contract import RELAY, Env

# All a peer cell's functions may do with this cell's Relay.
INVOKE_ACTION = "lambda:InvokeFunction"


class Relay:
    """The Relay function, and which accounts may invoke it (made by `Functions`, in the
    stack's own scope, as every function is)."""

    def __init__(self, *, cell: CellPlacement, functions: Functions, connections_url: str) -> None:
        self.function: lambda_.IFunction = functions.add(
            RELAY.function_name,
            RELAY.handler,
            RELAY.access,
            function_name=cell.relay_name,
            # No API event tells the Relay where this stage's @connections API is.
            more_environment={Env.CONNECTIONS_ENDPOINT.value: connections_url},
        )
        # The account's other principals get nothing: each caller's role names the Relay.
        for account in cell.peer_accounts():
            self.function.add_permission(
                f"InvokeBy{account}",
                principal=iam.AccountPrincipal(account),
                action=INVOKE_ACTION,
            )
