"""A cell among the others (PROTOCOL.md §6): what its functions learn, whom its Relay trusts.

Every cell is a `MessengerStack` in its own account and region. A cell asks another one
thing only, through the other's `Relay` function (`messenger.contract.RELAY`), so each
cell must know every peer's Relay at synth time, before any of them exists: the Relay's
name is deterministic (`messenger-<env>-<cell>-relay`), so its ARN is too.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Cell, CellsConfig
from infra.directory import DirectoryLocation
from infra.regions import PARTITION
from messenger.contract import Env

# Lambda's limit for a function's environment, all variables together ("Function
# configuration, deployment, and execution" quotas).
LAMBDA_ENVIRONMENT_BYTES = 4096
# What the cells' variables may take of it; the tables' names, the TTL, powertools' and
# the push platforms' variables (about 600 bytes with all three platforms) need the rest.
CELL_ENVIRONMENT_BUDGET = 3072


def relay_function_name(env: str, cell_id: str) -> str:
    return f"messenger-{env}-{cell_id}-relay"


def relay_arn(env: str, cell: Cell, qualifier: str | None) -> str:
    """What a peer invokes: the cell's Relay, or its alias (SnapStart restores versions only)."""
    arn = (
        f"arn:{PARTITION}:lambda:{cell.region}:{cell.account}:function:"
        f"{relay_function_name(env, cell.cell_id)}"
    )
    return f"{arn}:{qualifier}" if qualifier else arn


@dataclass(frozen=True)
class CellPlacement:
    """One cell of a deployment, as its stack needs to know it."""

    env: str
    cell: Cell
    cells: CellsConfig
    # The Relay's alias that peers invoke, None to invoke the function itself.
    relay_qualifier: str | None
    # Where the cell publishes its URL.
    directory: DirectoryLocation

    @property
    def cell_id(self) -> str:
        return self.cell.cell_id

    @property
    def relay_name(self) -> str:
        return relay_function_name(self.env, self.cell_id)

    def peer_relays(self) -> dict[str, str]:
        """Peer cell -> the ARN its Relay is invoked by."""
        return {
            peer.cell_id: relay_arn(self.env, peer, self.relay_qualifier)
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
                f"{cell_id}={arn}" for cell_id, arn in self.peer_relays().items()
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
