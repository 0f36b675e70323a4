"""The cell's DynamoDB tables: the contract's (`messenger.contract.TABLES`), on demand.

Every table is named from the cell's first deploy (infra/cells.py), so that adding or
removing a standby changes its replicas in place and nothing else. The tables a
standby's side runs on are the primary's replicas, except the regional ones: rate-limit
state is per region by design (docs/availability.md), so each side owns its Limits
table, and replicating it would only add to the standby's write bill.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb

from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from messenger.contract import LIMITS_TABLE, TABLES, TableSpec

# Tables each side of a cell owns, never replicated.
REGIONAL_TABLES = frozenset({LIMITS_TABLE})


class Tables:
    """Every table of the contract, named; with a standby, the replicated ones have a replica
    in its region (in the standby's stack: those replicas, and its own regional tables).

    Made in the stack's own scope, like every part of it (infra/stack.py): a table's
    logical id is its identity, and another one would replace it, empty.
    """

    def __init__(self, stack: Stack, *, config: DeploymentConfig, cell: CellPlacement) -> None:
        self._stack = stack
        self._config = config
        self._cell = cell
        self.by_spec: dict[TableSpec, dynamodb.ITableV2] = {
            spec: self._table(spec) for spec in TABLES
        }

    def _encryption(self) -> dynamodb.TableEncryptionV2:
        """The AWS-managed aws/dynamodb key, except where Movers of other accounts write
        (infra/mover.py): DynamoDB refuses cross-account access to a table under that key
        (its key policy cannot admit them), so those tables use DynamoDB's own key
        (switching is an in-place update of the table)."""
        if self._cell.moves_across_accounts:
            return dynamodb.TableEncryptionV2.dynamo_owned_key()
        return dynamodb.TableEncryptionV2.aws_managed_key()

    def _table(self, spec: TableSpec) -> dynamodb.ITableV2:
        regional = spec in REGIONAL_TABLES
        if self._cell.standby and not regional:
            # The primary's replica, in this region.
            replica = self._cell.primary_table_name(spec)
            return dynamodb.TableV2.from_table_name(self._stack, spec.logical_name, replica)
        name: str | None
        if self._cell.standby:
            name = self._cell.standby_table_name(spec)
            standby = None
        else:
            name = self._cell.table_name(spec)
            standby = None if regional else self._cell.cell.standby

        def key(name: str) -> dynamodb.Attribute:
            # Every key attribute of the contract's tables is a string.
            return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)

        def projection(name: str) -> dynamodb.ProjectionType:
            return dynamodb.ProjectionType[name]

        for index in spec.local_indexes:
            assert index.partition_key == spec.partition_key, "an LSI shares the table's pk"
        return dynamodb.TableV2(
            self._stack,
            spec.logical_name,
            table_name=name,
            # Asynchronous, last writer wins (docs/availability.md); the replica has the
            # table's settings, point-in-time recovery and deletion protection included.
            replicas=[dynamodb.ReplicaTableProps(region=standby.region)] if standby else None,
            partition_key=key(spec.partition_key),
            sort_key=key(spec.sort_key),
            # On demand: no capacity to plan, pay per request, nothing when idle.
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True, recovery_period_in_days=spec.recovery_days
            ),
            encryption=self._encryption(),
            removal_policy=self._config.removal_policy,
            deletion_protection=self._config.deletion_protection,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=index.name,
                    partition_key=key(index.partition_key),
                    sort_key=key(index.sort_key) if index.sort_key else None,
                    projection_type=projection(index.projection),
                )
                for index in spec.global_indexes
            ]
            or None,
            local_secondary_indexes=[
                dynamodb.LocalSecondaryIndexProps(
                    index_name=index.name,
                    sort_key=key(index.sort_key or spec.sort_key),
                    projection_type=projection(index.projection),
                )
                for index in spec.local_indexes
            ]
            or None,
        )
