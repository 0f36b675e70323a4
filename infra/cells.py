"""A cell among the others (docs/protocol.md §6): what its functions learn, whom its Relay trusts.

Every deployment is cells, each a `MessengerStack` in its own account and region; a
deployment without `-c cells` is one cell without peers or a directory. A cell asks another
one thing only, through the other's `Relay` function (`messenger.contract.RELAY`), so each
cell must know every peer's Relay at synth time, before any of them exists: the Relay's
name is deterministic (`messenger-<env>-<cell>-relay`), so its ARN is too.

A cell with a standby (docs/protocol.md §7) is two stacks: its primary and, in another region
of its account, `Messenger-<env>-<cell>-standby`, the same stack against the replicas of
the primary's tables (global tables, named `messenger-<env>-<cell>-<table>` from the
cell's first deploy, so that the standby finds them and adding it replaces nothing; the
Limits table excepted, which each side owns) with its own Relay,
`messenger-<env>-<cell>-standby-relay`. Peers name both Relays (`CELL_PEERS`:
`<cell>=<primary>|<standby>`) and try the standby's when the primary's does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Cell, CellsConfig, Target
from infra.directory import DirectoryLocation, directory_location
from infra.regions import PARTITION
from messenger.config import PEER_STANDBY_SEPARATOR
from messenger.contract import Env, TableSpec

# Lambda's limit for a function's environment, all variables together ("Function
# configuration, deployment, and execution" quotas).
LAMBDA_ENVIRONMENT_BYTES = 4096
# What the cells' variables may take of it; the tables' names, the TTL, powertools' and
# the push platforms' variables (about 600 bytes with all three platforms) need the rest.
CELL_ENVIRONMENT_BUDGET = 3072


STANDBY_SUFFIX = "-standby"


def relay_function_name(env: str, cell_id: str, standby: bool = False) -> str:
    return f"messenger-{env}-{cell_id}{STANDBY_SUFFIX if standby else ''}-relay"


def table_name(env: str, cell_id: str, spec: TableSpec, standby: bool = False) -> str:
    """A cell's table, named from the cell's first deploy: `TableName` is create-only, so a
    name given later (when a standby comes) would replace the table with an empty one.

    The names are the same with and without a standby. A regional table
    (`infra.tables.REGIONAL_TABLES`) is one per side: the standby's carries its suffix.
    """
    side = STANDBY_SUFFIX if standby else ""
    return f"messenger-{env}-{cell_id}{side}-{spec.logical_name.lower()}"


def relay_arn(env: str, cell: Cell, qualifier: str | None, standby: bool = False) -> str:
    """What a peer invokes: the cell's Relay, or its alias (SnapStart restores versions only)."""
    place = cell.standby if standby and cell.standby else cell.target
    arn = (
        f"arn:{PARTITION}:lambda:{place.region}:{place.account}:function:"
        f"{relay_function_name(env, cell.cell_id, standby)}"
    )
    return f"{arn}:{qualifier}" if qualifier else arn


def relay_arns(env: str, cell: Cell, qualifier: str | None) -> tuple[str, ...]:
    """A cell's Relays, in the order its peers try them: the primary's, then the standby's."""
    sides = (False, True) if cell.standby else (False,)
    return tuple(relay_arn(env, cell, qualifier, standby) for standby in sides)


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

    def peer_relays(self) -> dict[str, tuple[str, ...]]:
        """Peer cell -> the ARNs its Relays are invoked by, in the order to try them."""
        return {
            peer.cell_id: relay_arns(self.env, peer, self.relay_qualifier)
            for peer in self.cells.peers_of(self.cell_id)
        }

    def peer_accounts(self) -> tuple[str, ...]:
        """The accounts, other than this cell's own, whose functions call its Relay.

        In its own account the callers' identity policies suffice; another account's
        callers also need the Relay's resource policy to name their account.
        """
        return tuple(
            sorted(
                {peer.account for peer in self.cells.peers_of(self.cell_id)} - {self.cell.account}
            )
        )

    def environment(self) -> dict[str, str]:
        """Every function's cell variables (parsed by messenger.config.CellSettings)."""
        variables = {
            Env.CELL_ID.value: self.cell_id,
            Env.CELL_SHARD_MAP.value: self.cells.shard_map.to_compact(),
            Env.CELL_PEERS.value: ",".join(
                f"{cell_id}={PEER_STANDBY_SEPARATOR.join(arns)}"
                for cell_id, arns in self.peer_relays().items()
            ),
        }
        size = sum(len(name) + len(value) for name, value in variables.items())
        if size > CELL_ENVIRONMENT_BUDGET:
            raise ValueError(
                f"the cell variables of {self.cell_id} take {size} bytes, more than the "
                f"{CELL_ENVIRONMENT_BUDGET} of Lambda's {LAMBDA_ENVIRONMENT_BYTES}-byte "
                "environment they may: fewer cells, shorter cell ids, or fewer shard ranges"
            )
        return variables
