"""The cells of a local stack (docs/protocol.md §6, docs/scale.md "Local").

A stack without cells has one `LocalCell` whose functions read the process environment,
exactly as before cells existed. A stack of N cells has N of them, `c0` … `c{N-1}`, on
the one port: each is a stage of its own (`/c0`), with its own tables (named with its
id), its own connections, and its own functions' environment (`environment`: CELL_ID,
CELL_SHARD_MAP, CELL_PEERS, CELL_EPOCH, its tables, its PRESENCE_FUNCTION and
CONNECTIONS_ENDPOINT). That environment never enters `os.environ`: the cell's
`Services` are made from it (`messenger.config.settings_from`), and every invocation
of the cell's functions runs inside `messenger.wiring.serving(those Services)`, so a
cell's invocation never sees another cell's settings, and functions/ never knows it
runs locally.

Every function of a cell has a deployed name, `messenger-<stage>-<cell>-<Function>`;
the peers reach a cell's Relay by its ARN through Lambda's Invoke API, which this
process serves (messenger_local.lambda_api), as on AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from messenger.config import LOCAL_CELL_EPOCH, PEER_STANDBY_SEPARATOR
from messenger.contract import PRESENCE_WORKER, RELAY, Env
from messenger.wiring import Services, serving
from messenger_local.gateway import Gateway
from messenger_local.lambdas import Functions
from messenger_protocol.cells import ShardMap


def cell_ids(count: int) -> list[str]:
    """The ids of a stack's cells: c0, c1, ..."""
    if count < 1:
        raise ValueError(f"a stack has at least one cell, not {count}")
    return [f"c{number}" for number in range(count)]


def function_prefix(stage: str, cell_id: str) -> str:
    """What a cell's function names start with: "messenger-local-c0-"."""
    return f"messenger-{stage}-{cell_id}-"


def function_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


@dataclass
class LocalCell:
    """One cell of a local stack: its stage, functions, tables and environment."""

    cell_id: str | None  # None: the one cell of a stack without cells
    host: str
    gateway: Gateway
    functions: Functions  # the routes', the authorizer's and the workers'
    # The Relay (cells only), on a pool of its own: a route's function waits for a peer's
    # Relay, which must never wait for a worker that the waiting functions hold.
    relay: Functions | None = None
    table_names: dict[str, str] = field(default_factory=dict)  # by environment variable
    # Every variable its functions were given (with cells, their whole environment).
    environment: dict[str, str] = field(default_factory=dict)
    # With cells: made from `environment` at the stack's start.
    services: Services | None = None
    # The cell's standby (issue 14, `--standby`): same CELL_ID, its own stage
    # (`/c0-standby`), tables (replicas of the cell's) and functions.
    standby: bool = False

    @property
    def stage(self) -> str:
        return self.gateway.api.stage

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.gateway.port}/{self.stage}"

    @property
    def http_url(self) -> str:
        """The stage over HTTP: CONNECTIONS_ENDPOINT of its functions."""
        return f"http://{self.host}:{self.gateway.port}/{self.stage}"

    @property
    def connections_url(self) -> str:
        return f"{self.http_url}/@connections"

    def all_functions(self) -> list[Functions]:
        return [self.functions] + ([self.relay] if self.relay is not None else [])

    def deployed_name(self, function_name: str) -> str:
        """A function's name as Invoke takes it: "messenger-local-c1-Relay"."""
        return self.functions.deployed_name(function_name)

    @property
    def relay_arn(self) -> str:
        """What its peers' CELL_PEERS name it by."""
        api = self.gateway.api
        return function_arn(api.region, api.account_id, self.deployed_name(RELAY.function_name))

    def serving(self) -> AbstractContextManager[None]:
        """What each of its invocations runs inside: the cell's own Services."""
        if self.services is None:
            raise RuntimeError(f"cell {self.cell_id} has no Services yet (not started)")
        return serving(self.services)


def cell_environment(
    cell: LocalCell,
    peers: list[LocalCell],
    shard_map: ShardMap,
    standbys: Mapping[str, LocalCell] | None = None,
) -> dict[Env, str]:
    """The variables that make a cell's functions that cell's (besides its tables).

    A peer with a standby is named by both Relays, `<cell>=<primary>|<standby>`: the
    caller tries the standby when the primary does not answer (messenger.config). The
    epoch's region part is the stage: `local-c0`, or `local-c0-standby`.
    """
    assert cell.cell_id is not None
    standbys = standbys or {}

    def relays(peer: LocalCell) -> str:
        standby = standbys.get(str(peer.cell_id))
        if standby is None:
            return peer.relay_arn
        return f"{peer.relay_arn}{PEER_STANDBY_SEPARATOR}{standby.relay_arn}"

    return {
        Env.CONNECTIONS_ENDPOINT: cell.http_url,
        Env.CELL_ID: cell.cell_id,
        Env.CELL_SHARD_MAP: shard_map.to_compact(),
        Env.CELL_PEERS: ",".join(f"{peer.cell_id}={relays(peer)}" for peer in peers),
        Env.CELL_EPOCH: f"{LOCAL_CELL_EPOCH}-{cell.stage}",
        Env.PRESENCE_FUNCTION: cell.deployed_name(PRESENCE_WORKER.function_name),
    }


def by_cell(cells: list[LocalCell]) -> Mapping[str, LocalCell]:
    """The cells (their primaries) by id."""
    return {cell.cell_id: cell for cell in cells if cell.cell_id is not None and not cell.standby}


def standby_stage(cell_id: str) -> str:
    """A cell's standby's stage (and name in its functions' and tables' names)."""
    return f"{cell_id}-standby"
