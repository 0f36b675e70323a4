"""A cell among the others (docs/protocol.md §6): what its functions learn, whom its Relay trusts.

    python -m infra.cells move --from c0 --to c2 --shards 0-16383   # a shard move (AWS)
    python -m infra.cells move --from c0 --abort MOVE_ID            # roll it back
    python -m infra.cells move-status --from c0                     # where it stands
    (infra/move_command.py; the runbook is docs/scale.md "Shard moves", "On AWS")

Every deployment is cells, each a `MessengerStack` in its own account and region; a
deployment without `-c cells` is one cell without peers or a directory. A cell asks another
one thing only, through the other's `Relay` function (`messenger.contract.RELAY`). Nothing
in a cell's stack names a peer (docs/scale.md "The mesh"): each side publishes its Relay's
ARN and its relay public key in the directory's bucket (infra/mesh.py), where the peers
read them at run time; the grants are written once for the whole deployment, by the
Relays' naming convention (`messenger-<env>-<cell>[-standby]-relay`: `relay_pattern`) and,
across accounts, the deployment's AWS Organization. Adding a cell redeploys no other.

A cell with a standby (docs/protocol.md §7) is two stacks: its primary and, in another region
of its account, `Messenger-<env>-<cell>-standby`, the same stack against the replicas of
the primary's tables (global tables, named `messenger-<env>-<cell>-<table>` from the
cell's first deploy, so that the standby finds them and adding it replaces nothing; the
Limits table excepted, which each side owns) with its own Relay,
`messenger-<env>-<cell>-standby-relay` and its own Relay record; peers try the standby's when
the primary's does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import DIRECTORY_KEY_CONTEXT, Cell, CellsConfig, Target
from infra.directory import DirectoryLocation, directory_bucket_name, directory_location
from infra.regions import PARTITION
from messenger.config import PRIMARY_SIDE, STANDBY_SIDE
from messenger.contract import STANDBY_SUFFIX, Env, TableSpec, table_name
from messenger_protocol.cells import DIRECTORY_NAME
from messenger_protocol.mesh import RELAY_RECORD_PREFIX, relay_record_key

# Lambda's limit for a function's environment, all variables together ("Function
# configuration, deployment, and execution" quotas).
LAMBDA_ENVIRONMENT_BYTES = 4096
# What the cells' variables may take of it; the tables' names, the TTL, powertools' and
# the push platforms' variables (about 600 bytes with all three platforms) need the rest.
CELL_ENVIRONMENT_BUDGET = 3072


def relay_function_name(env: str, cell_id: str, standby: bool = False) -> str:
    return f"messenger-{env}-{cell_id}{STANDBY_SUFFIX if standby else ''}-relay"


def relay_arn(env: str, cell: Cell, qualifier: str | None, standby: bool = False) -> str:
    """What a peer invokes: the cell's Relay, or its alias (SnapStart restores versions only)."""
    place = cell.standby if standby and cell.standby else cell.target
    arn = (
        f"arn:{PARTITION}:lambda:{place.region}:{place.account}:function:"
        f"{relay_function_name(env, cell.cell_id, standby)}"
    )
    return f"{arn}:{qualifier}" if qualifier else arn


def relay_pattern(env: str, qualifier: str | None) -> str:
    """Every Relay of the deployment, primaries' and standbys', in any account and region
    (what a cell's callers may invoke): the same for every cell, whatever their number."""
    arn = f"arn:{PARTITION}:lambda:*:*:function:{relay_function_name(env, '*')}"
    return f"{arn}:{qualifier}" if qualifier else arn


@dataclass(frozen=True)
class CellPlacement:
    """One cell of a deployment, as its stack needs to know it."""

    env: str
    cell: Cell
    cells: CellsConfig
    # The Relay's alias that peers invoke, None to invoke the function itself.
    relay_qualifier: str | None
    # This is the cell's standby stack (in `cell.standby`), not its primary.
    standby: bool = False

    @property
    def cell_id(self) -> str:
        return self.cell.cell_id

    @property
    def target(self) -> Target:
        """Where this side of the cell runs."""
        if self.standby:
            assert self.cell.standby is not None, "only a cell with a standby has its stack"
            return self.cell.standby
        return self.cell.target

    @property
    def has_directory(self) -> bool:
        """A cell of a deployment with a directory is one of a mesh: it publishes its URL
        there, and peers (today's, or cells added later) invoke its Relay."""
        return self.cells.has_directory

    @property
    def moves_across_accounts(self) -> str | None:
        """The organization whose Movers this cell's primary admits to its tables (a
        deployment of several cells in several accounts), None when every Mover is of
        this account (its role's own grant suffices: infra/mover.py)."""
        organization = self.cells.organization
        if self.standby or not (self.has_directory and organization):
            return None  # (a deployment without a directory may name no account at all)
        several = len(self.cells.accounts) > 1 and len(self.cells.shard_map.cells()) > 1
        return organization if several else None

    @property
    def directory(self) -> DirectoryLocation:
        """Where the cell publishes its URL (a deployment with a directory only)."""
        return directory_location(self.env, self.cells)

    @property
    def relay_name(self) -> str:
        return relay_function_name(self.env, self.cell_id, self.standby)

    def table_name(self, spec: TableSpec) -> str | None:
        """The name the primary's template gives the table: None for a cell whose tables
        were created unnamed (`-c tableNames:<cell>`), which CloudFormation keeps naming."""
        if self.cell.unnamed_tables is not None:
            return None
        return table_name(self.env, self.cell_id, spec)

    def primary_table_name(self, spec: TableSpec) -> str:
        """The physical name of the primary's table, known at synth time (a standby's
        replicas have it): a cell with a standby and unnamed tables has its names given."""
        unnamed = self.cell.unnamed_tables
        if unnamed is None:
            return table_name(self.env, self.cell_id, spec)
        name = unnamed.name_of(spec.logical_name)
        assert name is not None, "config refuses a standby without the unnamed tables' names"
        return name

    def standby_table_name(self, spec: TableSpec) -> str:
        """A regional table of the standby's own (`infra.tables.REGIONAL_TABLES`)."""
        return table_name(self.env, self.cell_id, spec, standby=True)

    @property
    def side(self) -> str:
        return STANDBY_SIDE if self.standby else PRIMARY_SIDE

    @property
    def relay_arn(self) -> str:
        """What this side's Relay record names: its Relay (or `live` alias)."""
        return relay_arn(self.env, self.cell, self.relay_qualifier, self.standby)

    @property
    def relay_pattern(self) -> str:
        return relay_pattern(self.env, self.relay_qualifier)

    @property
    def relay_record_arns(self) -> list[str]:
        """This side's own Relay record in the directory's bucket and, with a second
        directory region, in that one's too (its writer's grant)."""
        key = relay_record_key(self.cell_id, self.side)
        fallback = self.fallback_directory
        return [
            self.directory.object_arn(key),
            *([fallback.object_arn(key)] if fallback is not None else []),
        ]

    @property
    def relay_records_arn(self) -> str:
        """Every side's Relay record (what the cell's functions may read)."""
        return self.directory.object_arn(f"{RELAY_RECORD_PREFIX}*")

    @property
    def relay_records_fallback_arn(self) -> str | None:
        """Every side's Relay record in the second region's bucket, None without one
        (read when the first region's bucket cannot be: messenger.dal.relay_directory)."""
        fallback = self.fallback_directory
        return None if fallback is None else fallback.object_arn(f"{RELAY_RECORD_PREFIX}*")

    @property
    def has_peers(self) -> bool:
        """A cell of a directory with other cells: it reads its shard map and its peers'
        Relay records from the directory's bucket."""
        return self.has_directory and len(self.cells.shard_map.cells()) > 1

    @property
    def shard_map_arn(self) -> str:
        """The signed directory in its bucket, which the cell's functions read the shard
        map from (messenger.dal.directory_map)."""
        return self.directory.object_arn(DIRECTORY_NAME)

    @property
    def missing_directory_key(self) -> str | None:
        """What a cell with peers cannot do without `-c directoryKey` (the synth warning
        the app gives its stack), None when it has the key or needs none. Not a refusal:
        the key exists only once the directory's stack is deployed, after a first synth."""
        if not self.has_peers or self.cells.directory_key:
            return None
        return (
            f"no -c {DIRECTORY_KEY_CONTEXT}: the functions of {self.cell_id} get no "
            f"{Env.DIRECTORY_PUBLIC_KEY.value}, so they cannot verify the signed directory "
            "(docs/protocol.md §6) they take the shard map from: they will refuse every "
            "request until a deploy gives it. Deploy the directory's stack first, then "
            f"every cell with -c {DIRECTORY_KEY_CONTEXT}=<its output DirectoryPublicKey> "
            '(docs/scale.md, "The directory\'s trust chain and its load")'
        )

    @property
    def fallback_directory(self) -> DirectoryLocation | None:
        """The directory's second region (`-c directorySecondRegion`), where the cell's
        functions read the signed directory when the first region's bucket cannot be
        read; None with one directory region."""
        region = self.cells.directory_second_region
        if region is None:
            return None
        first = self.directory
        return DirectoryLocation(
            bucket=directory_bucket_name(self.env, first.account, region),
            account=first.account,
            region=region,
        )

    @property
    def shard_map_fallback_arn(self) -> str | None:
        """The signed directory in the second region's bucket, None without one."""
        fallback = self.fallback_directory
        return None if fallback is None else fallback.object_arn(DIRECTORY_NAME)

    def fallback_environment(self) -> dict[str, str]:
        """MESH_FALLBACK_*: the second directory region's bucket, empty without one."""
        fallback = self.fallback_directory
        if fallback is None:
            return {}
        return {
            Env.MESH_FALLBACK_BUCKET.value: fallback.bucket,
            Env.MESH_FALLBACK_REGION.value: fallback.region,
        }

    def environment(self) -> dict[str, str]:
        """Every function's cell variables (parsed by messenger.config.CellSettings): this
        cell and, with peers, where the signed directory and their Relay records are, and
        the key the directory is signed with. No peer, and no shard map: nothing here
        grows with the number of cells."""
        variables = {Env.CELL_ID.value: self.cell_id}
        if self.has_peers:
            location = self.directory
            variables |= {
                Env.MESH_BUCKET.value: location.bucket,
                Env.MESH_BUCKET_REGION.value: location.region,
                Env.MESH_BUCKET_OWNER.value: location.account,
            }
            variables |= self.fallback_environment()
            # Unset until the directory's stack made the key: the functions then refuse
            # to serve, saying so (messenger.config.CellSettings).
            if self.cells.directory_key:
                variables[Env.DIRECTORY_PUBLIC_KEY.value] = self.cells.directory_key
        size = sum(len(name) + len(value) for name, value in variables.items())
        if size > CELL_ENVIRONMENT_BUDGET:
            raise ValueError(
                f"the cell variables of {self.cell_id} take {size} bytes, more than the "
                f"{CELL_ENVIRONMENT_BUDGET} of Lambda's {LAMBDA_ENVIRONMENT_BYTES}-byte "
                "environment they may"
            )
        return variables


if __name__ == "__main__":
    # The operator's shard-move commands (`move`, `move-status`): infra/move_command.py.
    import sys

    from infra.move_command import main

    sys.exit(main())
