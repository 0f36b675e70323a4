"""Each `contract.Access` need as the narrowest IAM statements that satisfy it.

A function's role holds exactly the statements of the needs its route declares in
`contract.ROUTES` (or `contract.AUTHORIZER`), so a new route, or a new need of an old
one, changes its grants and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aws_cdk import Fn, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam

from messenger.contract import LIMITS_TABLE, QUEUE_TABLE, USERS_TABLE, Access, TableSpec

# Transactions have no IAM action of their own: TransactWriteItems is authorized per item
# (Put, Update, Delete, and ConditionCheckItem for a bare condition).
WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
USERS_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
# A sync page reads its messages by key, 100 a call (dal.queue.Queue.page).
QUEUE_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
# A conditional store that finds an older copy reads it back (dal.queue.store_message);
# an ack reads which of its ids are queued before it writes receipts (Queue.present).
QUEUE_WRITE_ACTIONS = (*WRITE_ACTIONS, "dynamodb:GetItem", "dynamodb:BatchGetItem")
POST_ACTIONS = ("execute-api:ManageConnections",)
# A bucket is taken from with UpdateItem; a registration is counted inside the
# authorizer's TransactWriteItems, which is authorized as an UpdateItem as well.
LIMITS_ACTIONS = ("dynamodb:UpdateItem",)
INVOKE_ACTIONS = ("lambda:InvokeFunction",)
# A flap is sent to the settle queue; reading it back is the event source mapping's.
SETTLE_ACTIONS = ("sqs:SendMessage",)
CREATE_ENDPOINT_ACTIONS = ("sns:CreatePlatformEndpoint",)
ENDPOINT_ACTIONS = (
    "sns:Publish",
    "sns:GetEndpointAttributes",
    "sns:SetEndpointAttributes",
    "sns:DeleteEndpoint",
)


@dataclass(frozen=True)
class Targets:
    """What the statements point at; ARNs may be CloudFormation tokens."""

    tables: Mapping[TableSpec, dynamodb.ITableV2]
    connections_arn: str  # arn:...:execute-api:REGION:ACCOUNT:API/STAGE/POST/@connections/*
    # The same with DELETE: a function closes a connection after an `error` frame that says
    # why (docs/protocol.md §3 Closing: REPLACED, TOO_MANY_REFUSED, MOVED).
    close_connections_arn: str
    push_apps: tuple[str, ...]  # SNS platform application ARNs
    # arn:...:lambda:REGION:ACCOUNT:function:NAME[:live], what the functions invoke, built
    # from its fixed name: the presence function announces too, and a reference to its
    # own ARN would make a cycle.
    presence_function_arn: str
    # The presence function's settle queue (infra/presence_settle.py): its ARN and URL.
    presence_settle_queue_arn: str
    presence_settle_queue_url: str
    # Every Relay of the deployment (infra/cells.py `relay_pattern`), and the Relay records
    # in the directory's bucket: None for a deployment of one cell, which has no peers.
    relay_pattern: str | None = None
    relay_records: str | None = None
    # The same records in the second region's bucket (the directory in two regions).
    relay_records_fallback: str | None = None
    # The signed directory (directory.json) in the same bucket: the shard map; None for one
    # cell. With the directory in two regions, the second region's copy too.
    shard_map: str | None = None
    shard_map_fallback: str | None = None


def index_arns(spec: TableSpec, table: dynamodb.ITableV2) -> list[str]:
    return [
        f"{table.table_arn}/index/{index.name}"
        for index in (*spec.global_indexes, *spec.local_indexes)
    ]


def endpoint_arns_of(application_arn: str) -> str:
    """arn:...:app/PLATFORM/NAME -> arn:...:endpoint/PLATFORM/NAME/* (SSM tokens too)."""
    if not Token.is_unresolved(application_arn):
        return application_arn.replace(":app/", ":endpoint/", 1) + "/*"
    # An ARN read from SSM is only known at deploy time: CloudFormation rewrites it.
    halves = Fn.split(":app/", application_arn)
    return Fn.join("", [Fn.select(0, halves), ":endpoint/", Fn.select(1, halves), "/*"])


def _table_statements(
    sid: str, spec: TableSpec, targets: Targets, actions: Iterable[str], indexes: bool
) -> list[iam.PolicyStatement]:
    table = targets.tables[spec]
    statements = [iam.PolicyStatement(sid=sid, actions=list(actions), resources=[table.table_arn])]
    if indexes and index_arns(spec, table):
        # On an index only Query means anything.
        statements.append(
            iam.PolicyStatement(
                sid=f"{sid}Indexes", actions=["dynamodb:Query"], resources=index_arns(spec, table)
            )
        )
    return statements


def _one(sid: str, actions: Iterable[str], resource: str) -> list[iam.PolicyStatement]:
    """A need granted by one statement on one resource."""
    return [iam.PolicyStatement(sid=sid, actions=list(actions), resources=[resource])]


def statements_for(access: Access, targets: Targets) -> list[iam.PolicyStatement]:
    """The IAM statements one need grants (none for push when no platform is set up)."""
    if access is Access.USERS_READ:
        return _table_statements("UsersRead", USERS_TABLE, targets, USERS_READ_ACTIONS, True)
    if access is Access.USERS_WRITE:
        return _table_statements("UsersWrite", USERS_TABLE, targets, WRITE_ACTIONS, False)
    if access is Access.QUEUE_READ:
        return _table_statements("QueueRead", QUEUE_TABLE, targets, QUEUE_READ_ACTIONS, True)
    if access is Access.QUEUE_WRITE:
        return _table_statements("QueueWrite", QUEUE_TABLE, targets, QUEUE_WRITE_ACTIONS, False)
    if access is Access.POST_TO_CONNECTION:
        return [
            iam.PolicyStatement(
                sid="PostToConnections",
                actions=list(POST_ACTIONS),
                resources=[targets.connections_arn, targets.close_connections_arn],
            )
        ]
    if access is Access.LIMITS:
        return _table_statements("Limits", LIMITS_TABLE, targets, LIMITS_ACTIONS, False)
    if access is Access.ANNOUNCE_PRESENCE:
        return _one("AnnouncePresence", INVOKE_ACTIONS, targets.presence_function_arn)
    if access is Access.SETTLE_PRESENCE:
        return _one("SettlePresence", SETTLE_ACTIONS, targets.presence_settle_queue_arn)
    if access is Access.PUSH:
        if not targets.push_apps:
            return []
        return [
            iam.PolicyStatement(
                sid="PushCreateEndpoints",
                actions=list(CREATE_ENDPOINT_ACTIONS),
                resources=list(targets.push_apps),
            ),
            iam.PolicyStatement(
                sid="PushToEndpoints",
                actions=list(ENDPOINT_ACTIONS),
                resources=[endpoint_arns_of(arn) for arn in targets.push_apps],
            ),
        ]
    if access is Access.RELAY:
        if not targets.relay_pattern:
            return []  # one cell: no peer to call
        return [
            iam.PolicyStatement(
                sid="InvokePeerRelays",
                actions=list(INVOKE_ACTIONS),
                resources=[targets.relay_pattern],
            )
        ]
    if access is Access.MESH_READ:
        if not targets.relay_records:
            return []
        return [
            iam.PolicyStatement(
                sid="ReadRelayRecords",
                actions=["s3:GetObject"],
                resources=[
                    targets.relay_records,
                    *([targets.relay_records_fallback] if targets.relay_records_fallback else []),
                ],
            )
        ]
    if access is Access.SHARD_MAP:
        if not targets.shard_map:
            return []  # one cell: its map is every shard, given in process
        return [
            iam.PolicyStatement(
                sid="ReadSignedDirectory",
                actions=["s3:GetObject"],
                resources=[
                    targets.shard_map,
                    *([targets.shard_map_fallback] if targets.shard_map_fallback else []),
                ],
            )
        ]
    raise ValueError(f"no IAM mapping for {access!r}")


def statements_for_all(needs: Iterable[Access], targets: Targets) -> list[iam.PolicyStatement]:
    # Sorted: a frozenset's order changes with the hash seed, the template must not.
    return [statement for access in sorted(needs) for statement in statements_for(access, targets)]
