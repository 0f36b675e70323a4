"""The cells of a local stack (docs/protocol.md §6, docs/scale.md "Local").

Every stack is a deployment of cells. A stack started without `cells` is one cell with no
peers (`ONE_CELL`), served at the stack's stage (`/local`) with its functions under their
contract names, as before cells existed. A stack of N cells has N of them, `c0` …
`c{N-1}`, on the one port: each is a stage of its own (`/c0`) whose functions are named
`messenger-<stage>-<cell>-<Function>`; with standbys, each cell has a second side at
`/c0-standby` (messenger_local.standby). Where each stands, its `Placement`, gives all
its names.

Each cell has its own tables and its own functions' environment (`environment`: what
Lambda would give them, CELL_ID, the directory's bucket (MESH_BUCKET...) and the directory
key's public half (DIRECTORY_PUBLIC_KEY: the shard map is read from the signed directory, as
on AWS),
CELL_EPOCH, its tables, its PRESENCE_FUNCTION and CONNECTIONS_ENDPOINT, the AWS endpoints).
Nothing in it names a peer: as on AWS, each side publishes its Relay and relay key in the
directory's bucket when the stack starts (messenger_local.lifecycle), where peers read
them. That environment never enters `os.environ`: the cell's `Services` are made from it
(messenger_local.function_services), and every invocation of the cell's functions runs
inside `messenger.wiring.serving(those Services)`, so a cell's invocation never sees
another cell's settings, and functions/ never knows it runs locally. The peers reach a
cell's Relay by the ARN its record names through Lambda's Invoke API, which this process
serves (messenger_local.lambda_api), as on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from messenger.config import LOCAL_CELL_EPOCH, PRIMARY_SIDE, STANDBY_SIDE
from messenger.contract import PRESENCE_WORKER, RELAY, Env
from messenger.wiring import Services, serving
from messenger_local.aws import ACCOUNT_ID
from messenger_local.gateway import Gateway
from messenger_local.lambdas import Functions

# The id of the one cell of a stack started without `cells`: the first of `cells=N`'s.
ONE_CELL = "c0"
STANDBY_SUFFIX = "-standby"


def mesh_bucket_name(api_id: str) -> str:
    """The directory's bucket of a stack of cells: where each side's Relay record is."""
    return f"messenger-directory-{api_id}"


def cell_ids(count: int) -> list[str]:
    """The ids of a stack's cells: c0, c1, ..."""
    if count < 1:
        raise ValueError(f"a stack has at least one cell, not {count}")
    return [f"c{number}" for number in range(count)]


def function_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


@dataclass(frozen=True)
class Placement:
    """Where a cell (or a cell's standby) stands in its stack, and so all its names."""

    cell_id: str
    stage: str  # its path on the port: "local", "c0", "c0-standby"
    function_prefix: str  # "" for the one cell, else "messenger-local-c0-"
    resource_prefix: str  # its tables' and push apps' names: "messenger-local-<apiId>-c0-"
    epoch: str  # CELL_EPOCH: "local", "local-c0", "local-c0-standby"
    standby: bool = False

    def deployed_name(self, function_name: str) -> str:
        """A function's name as Invoke takes it: "messenger-local-c1-Relay"."""
        return self.function_prefix + function_name


def one_cell(stage: str, api_id: str) -> Placement:
    """The one cell of a stack started without `cells`: at the stage, named as before."""
    return Placement(ONE_CELL, stage, "", f"messenger-{stage}-{api_id}-", LOCAL_CELL_EPOCH)


def cell_of(stage: str, api_id: str, cell_id: str, *, standby: bool = False) -> Placement:
    """A cell of a stack of cells (or its standby): a stage of its own, its id in every name."""
    own = f"{cell_id}{STANDBY_SUFFIX}" if standby else cell_id
    return Placement(
        cell_id,
        own,
        f"messenger-{stage}-{own}-",
        f"messenger-{stage}-{api_id}-{own}-",
        f"{LOCAL_CELL_EPOCH}-{own}",
        standby,
    )


@dataclass(frozen=True)
class Addresses:
    """How a stack is reached: its host and bound port, its region and account."""

    host: str
    port: int
    region: str
    account_id: str

    def ws_url(self, placement: Placement) -> str:
        return f"ws://{self.host}:{self.port}/{placement.stage}"

    def connect_endpoints(self, placement: Placement) -> list[str]:
        """The URLs a side is reached at, which connect queries are signed for (`aud`,
        docs/protocol.md §1): its own, and on loopback the same by the name `localhost`."""
        own = self.ws_url(placement)
        if self.host in ("127.0.0.1", "::1", "localhost"):
            return [own, f"ws://localhost:{self.port}/{placement.stage}"]
        return [own]

    def http_url(self, placement: Placement) -> str:
        """A stage over HTTP: CONNECTIONS_ENDPOINT of its functions."""
        return f"http://{self.host}:{self.port}/{placement.stage}"

    @property
    def lambda_url(self) -> str:
        """Lambda's Invoke API, served on the same port."""
        return f"http://{self.host}:{self.port}"

    def relay_arn(self, placement: Placement) -> str:
        """What a cell side's Relay record names its Relay by."""
        name = placement.deployed_name(RELAY.function_name)
        return function_arn(self.region, self.account_id, name)


def cell_environment(
    placement: Placement,
    addresses: Addresses,
    mesh_bucket: str,
    directory_key: str,
) -> dict[str, str]:
    """The variables that make a cell's functions that cell's (besides its tables).

    `mesh_bucket`: the directory's bucket, where the peers' Relay records and the signed
    directory are ("" for the one cell of a stack without cells, which has no peers);
    `directory_key`: the public half of the key the directory is signed with. The cells
    read their shard map there as on AWS (messenger.dal.directory_map).
    """
    variables = {
        Env.CONNECTIONS_ENDPOINT: addresses.http_url(placement),
        Env.CONNECT_ENDPOINTS: ",".join(dict.fromkeys(addresses.connect_endpoints(placement))),
        Env.CELL_ID: placement.cell_id,
        Env.CELL_EPOCH: placement.epoch,
        Env.CELL_SIDE: STANDBY_SIDE if placement.standby else PRIMARY_SIDE,
        Env.PRESENCE_FUNCTION: placement.deployed_name(PRESENCE_WORKER.function_name),
    }
    if mesh_bucket:
        variables |= {
            Env.MESH_BUCKET: mesh_bucket,
            Env.MESH_BUCKET_REGION: addresses.region,
            Env.MESH_BUCKET_OWNER: ACCOUNT_ID,
            Env.DIRECTORY_PUBLIC_KEY: directory_key,
        }
    return {env.value: value for env, value in variables.items()}


@dataclass(frozen=True)
class LocalCell:
    """One cell of a local stack (or a cell's standby): its stage, functions, tables,
    environment and Services."""

    placement: Placement
    addresses: Addresses
    gateway: Gateway
    functions: Functions  # the routes', the authorizer's and the workers'
    # The Relay, on a pool of its own: a route's function waits for a peer's Relay, which
    # must never wait for a worker that the waiting functions hold.
    relay: Functions
    table_names: Mapping[str, str]  # by environment variable
    environment: Mapping[str, str]  # every variable its functions are given
    services: Services  # made from `environment`; every invocation runs in them

    @property
    def cell_id(self) -> str:
        return self.placement.cell_id

    @property
    def standby(self) -> bool:
        """Whether this is a cell's standby (issue 14, `--standby`): the same CELL_ID, its
        own stage (`/c0-standby`), tables (replicas of the cell's) and functions."""
        return self.placement.standby

    @property
    def stage(self) -> str:
        return self.placement.stage

    @property
    def ws_url(self) -> str:
        return self.addresses.ws_url(self.placement)

    @property
    def http_url(self) -> str:
        """The stage over HTTP: CONNECTIONS_ENDPOINT of its functions."""
        return self.addresses.http_url(self.placement)

    @property
    def connections_url(self) -> str:
        return f"{self.http_url}/@connections"

    @property
    def relay_arn(self) -> str:
        """What its Relay record names it by."""
        return self.addresses.relay_arn(self.placement)

    def all_functions(self) -> list[Functions]:
        return [self.functions, self.relay]

    def deployed_name(self, function_name: str) -> str:
        """A function's name as Invoke takes it: "messenger-local-c1-Relay"."""
        return self.placement.deployed_name(function_name)

    def serving(self) -> AbstractContextManager[None]:
        """What each of its invocations runs inside: the cell's own Services."""
        return serving(self.services)


def by_cell(cells: Iterable[LocalCell]) -> Mapping[str, LocalCell]:
    """The cells (their primaries) by id."""
    return {cell.cell_id: cell for cell in cells if not cell.standby}
