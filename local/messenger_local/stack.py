"""The whole messenger in one process: the emulated WebSocket API, the real functions, moto.

In-process API (tests, the client SDK's tests, load tests)::

    from messenger_local import LocalStack

    async with LocalStack(port=0, aws_port=0, idle_timeout=2.0) as stack:
        stack.ws_url            # "ws://127.0.0.1:54321/local"
        stack.connections_url   # "http://127.0.0.1:54321/local/@connections"
        stack.aws_endpoint      # "http://127.0.0.1:54322" (moto)
        stack.table_names       # {"USERS_TABLE": "messenger-local-<apiId>-Users", ...}
        stack.environment       # every variable the functions are given
        stack.clients.dynamodb  # the functions' own DynamoDB client (to throttle, say)
        stack.invocations       # every Invocation so far, in the order they ended
        await stack.settled()   # until no invocation is in flight
        stack.dump()            # every item of its tables (messenger_local.activity)

Several cells (docs/protocol.md §6) in the one process, on the one port::

    async with LocalStack(cells=2) as stack:
        stack.cell_ids                  # ("c0", "c1")
        stack.cell_url("c1")            # "ws://127.0.0.1:54321/c1"
        stack.directory_url             # "http://127.0.0.1:54321/directory.json"
        stack.directory                 # the same document, a messenger_protocol Directory
        stack.home_of("alice")          # "c0"
        stack.home_url("alice")         # "ws://127.0.0.1:54321/c0"
        cell = stack.cell("c1")         # a messenger_local.cells.LocalCell
        cell.table_names                # {"USERS_TABLE": "messenger-local-<apiId>-c1-Users", ...}
        cell.environment                # its functions' whole environment (CELL_ID=c1 ...)
        cell.relay_arn                  # what its peers' CELL_PEERS name its Relay by
        stack.invocations_of("Relay", cell="c1")
        stack.connection_ids(cell="c0")

With a standby for each cell (issue 14, messenger_local.standby)::

    async with LocalStack(cells=2, standby=True, replication_lag=1.0) as stack:
        stack.standby("c0").standby.ws_url   # "ws://127.0.0.1:54321/c0-standby"
        stack.standby("c0").replicator       # its pending / replicated / dropped counts
        failover = await stack.fail_over("c0")  # as POST /_local/failover/c0 does
        stack.active("c0")                   # the side serving c0 now: its standby

Every stack is a deployment of cells (messenger_local.cells): without `cells`, it is one
cell with no peers, served at its stage with no directory; `cell_ids` is then (). With
cells, `ws_url`, `http_url`, `connections_url` and `table_names` raise: every cell has
its own (`stack.cell(id)`).

`LocalStack(...)` takes, all keyword-only: `host`, `port`, `stage` (with cells: the
deployment's name in function and table names; each cell's stage is its id), `cells`
(the number of cells; None, the default: one cell served at the stage, as before cells
existed), `aws_port`, `aws` (an already started `EmbeddedAws` to share: faster when
starting many stacks; each stack makes its own tables, named after its random apiId,
and then deletes them), `idle_timeout` and `max_duration` (seconds), `environment`
(extra variables for the functions of every cell, among messenger.contract.Env's, e.g.
`{"MESSAGE_TTL_SECONDS": "5"}`), `workers` (the worker pool size; each Relay runs on a
second pool of that size), `integration_timeout`, `routes` and `authorizer` (default: the
contract's), `on_invocation` (called with each `Invocation`, e.g. to print its `line()`),
`state_dir` (a directory that keeps moto's tables and push applications across
restarts, see messenger_local.state; only with the stack's own moto), `standby`,
`replication_lag`, and `first_directory_version` (with cells: the version the directory
is first published with, 1 unless given; `messenger local` gives one above any earlier
run's, see messenger_local.cli.first_directory_version).

Each cell's presence function has its settle queue in moto (flaps wait there out their
settle time, SQS's DelaySeconds, which moto honours), read by a poller that hands it
the batches as SQS events, as Lambda's event source mapping does
(messenger_local.settle_queue): `settled()` does not wait for a flap still on the queue.

The functions get their configuration as on Lambda, as an environment, but one of each
cell's own that never enters `os.environ` (messenger_local.function_services): several
stacks run side by side in one process, each cell's invocations in its own Services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

from nacl.signing import SigningKey

from messenger.contract import AUTHORIZER, ROUTES, Authorizer, Env, Route
from messenger_local import activity, lifecycle
from messenger_local.activity import Activity, TableDump
from messenger_local.aws import EmbeddedAws
from messenger_local.cells import LocalCell, by_cell, cell_ids
from messenger_local.directory import LocalDirectory
from messenger_local.function_services import FunctionClients, runtime_variables
from messenger_local.gateway import MAX_DURATION_SECONDS, Limits
from messenger_local.invocations import Invocation
from messenger_local.lambdas import DEFAULT_WORKERS, INTEGRATION_TIMEOUT_SECONDS
from messenger_local.lifecycle import StackConfig, StackParts
from messenger_local.server import DIRECTORY_PATH, Server
from messenger_local.standby import DEFAULT_REPLICATION_LAG_SECONDS, Failover, Standby, Standbys
from messenger_protocol.cells import Directory, ShardMap
from messenger_protocol.limits import IDLE_TIMEOUT_SECONDS

_FUNCTION_VARIABLES = frozenset(env.value for env in Env)
# One line per failover asked for (`messenger local` prints it on its console).
FAILOVER_LOGGER = logging.getLogger("messenger_local.failover")


def report_failover(failover: Failover, *, first: bool) -> None:
    """Log a failover: the switch, or (asked again) that the cell had already switched."""
    standby_stage = failover.url.rsplit("/", 1)[-1]
    if first:
        FAILOVER_LOGGER.warning(
            "failover: %s -> %s (epoch %s, %d writes dropped)",
            failover.cell,
            standby_stage,
            failover.epoch,
            failover.dropped_writes,
        )
    else:
        FAILOVER_LOGGER.warning(
            "failover: %s already failed over to %s (epoch %s): nothing changed",
            failover.cell,
            standby_stage,
            failover.epoch,
        )


class LocalStack:
    """The emulated API Gateway stage (a stage per cell), the functions behind it and moto,
    as one async context: its public face (the parts and their order of starting are
    messenger_local.lifecycle's)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        cells: int | None = None,
        aws_port: int = 0,
        aws: EmbeddedAws | None = None,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_duration: float = MAX_DURATION_SECONDS,
        environment: Mapping[str, str] | None = None,
        workers: int = DEFAULT_WORKERS,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        routes: Iterable[Route] = ROUTES,
        authorizer: Authorizer | None = AUTHORIZER,
        on_invocation: Callable[[Invocation], None] | None = None,
        state_dir: Path | None = None,
        standby: bool = False,
        replication_lag: float = DEFAULT_REPLICATION_LAG_SECONDS,
        first_directory_version: int = 1,
        directory_key: SigningKey | None = None,
    ) -> None:
        if state_dir is not None and aws is not None:
            raise ValueError("state_dir keeps the stack's own moto: do not pass aws with it")
        # No `cells`: one cell, served at the stage with no directory.
        one_stage = cells is None
        if standby and one_stage:
            raise ValueError("a standby is a cell's: give cells with standby")
        if standby and state_dir is not None:
            raise ValueError(
                "standbys and kept state do not go together (the replicas "
                "would come back without what replication had pending)"
            )
        if replication_lag < 0:
            raise ValueError("the replication lag cannot be negative")
        unknown = sorted(set(environment or {}) - _FUNCTION_VARIABLES)
        if unknown:
            raise ValueError(
                f"the functions read no {', '.join(unknown)} (messenger.contract.Env names "
                "what they read)"
            )
        ids = cell_ids(1 if cells is None else cells)
        self._config = StackConfig(
            host=host,
            stage=stage,
            one_stage=one_stage,
            cell_ids=tuple(ids),
            shard_map=ShardMap.even(ids),
            limits=Limits(idle_timeout=idle_timeout, max_duration=max_duration),
            environment=dict(environment or {}),
            workers=workers,
            integration_timeout=integration_timeout,
            routes=tuple(routes),
            authorizer=authorizer,
            state_dir=state_dir,
            standby=standby,
            first_directory_version=first_directory_version,
            # A stack not given one (tests) makes its own: its clients read /directory.key.
            directory_key=directory_key or SigningKey.generate(),
        )
        shared = aws or EmbeddedAws(host=host, port=aws_port)
        self._parts = StackParts(
            aws=shared,
            owns_aws=aws is None,
            server=Server(host, port),
            standbys=Standbys(replication_lag, shared.gate, shared.region),
            activity=Activity(on_invocation),
        )
        self.host = host
        self.stage = stage
        self.shard_map = self._config.shard_map
        self.state_dir = state_dir
        self.replication_lag = replication_lag
        self._failovers_reported: set[str] = set()

    # --- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._parts.server.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self._single_stage()}"

    @property
    def http_url(self) -> str:
        """The stage over HTTP: CONNECTIONS_ENDPOINT, and boto3's endpoint_url."""
        return f"http://{self.host}:{self.port}/{self._single_stage()}"

    @property
    def lambda_url(self) -> str:
        """Lambda's Invoke API, served here: AWS_ENDPOINT_URL_LAMBDA of the functions."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_url(self) -> str:
        return f"{self.http_url}/@connections"

    @property
    def table_names(self) -> dict[str, str]:
        """The tables by environment variable ({} before the start)."""
        self._single_stage()
        cells = self._parts.cells
        return dict(cells[0].table_names) if cells else {}

    @property
    def environment(self) -> dict[str, str]:
        """Every variable the functions are given ({} before the start); with cells, what
        every cell's are given (`stack.cell(id).environment` has each cell's own)."""
        cells = self._parts.cells
        if not cells:
            return {}
        if self._config.one_stage:
            return dict(cells[0].environment)
        return runtime_variables(self.aws, self.lambda_url) | dict(self._config.environment)

    @property
    def aws_endpoint(self) -> str:
        return self.aws.endpoint

    @property
    def aws(self) -> EmbeddedAws:
        return self._parts.aws

    @property
    def clients(self) -> FunctionClients:
        """The boto3 clients every cell's functions use (once started)."""
        if self._parts.clients is None:
            raise RuntimeError("the functions' clients are made when the stack starts")
        return self._parts.clients

    @property
    def restored(self) -> bool:
        """True when the tables came back from state_dir."""
        return self._parts.restored

    def _single_stage(self) -> str:
        if not self._config.one_stage:
            raise RuntimeError(
                "a stack of cells has a stage, URLs and tables per cell: use "
                "stack.cell_url(cell), stack.cell(cell).table_names, stack.directory_url"
            )
        return self.stage

    # --- cells ---------------------------------------------------------------------

    @property
    def cell_ids(self) -> tuple[str, ...]:
        """The cells' ids in the directory, c0, c1, ...; () for a stack served as one stage."""
        return self._config.directory_cells

    def cell(self, cell_id: str) -> LocalCell:
        """One cell (once started): its URLs, tables, environment and functions."""
        try:
            return by_cell(self._parts.cells)[cell_id]
        except KeyError:
            known = ", ".join(self._config.cell_ids)
            raise KeyError(f"no cell {cell_id!r} (cells: {known})") from None

    def cell_url(self, cell_id: str) -> str:
        """The WebSocket URL of a cell: ws://HOST:PORT/<cell>."""
        return self.cell(cell_id).ws_url

    def home_of(self, user_id: str) -> str:
        """The user's home cell (docs/protocol.md §6), by the directory published last
        (a shard move changes it)."""
        if self._config.one_stage:
            return self.shard_map.home_of(user_id)
        return self.directory.home_of(user_id)

    def home_url(self, user_id: str) -> str:
        """The WebSocket URL the user connects to."""
        return self.cell_url(self.home_of(user_id))

    @property
    def directory_url(self) -> str:
        """GET it for the directory document (docs/protocol.md §6): only with cells."""
        self._published_directory()
        return f"http://{self.host}:{self.port}{DIRECTORY_PATH}"

    @property
    def directory_public_key(self) -> str:
        """The directory's public key (base64url): also served at /directory.key."""
        return self._published_directory().signer.public_key()

    @property
    def directory_bucket(self) -> str:
        """The embedded S3's bucket the directory is kept in, as the deployment's is."""
        return self._published_directory().bucket.name

    @property
    def directory(self) -> Directory:
        """The directory this stack serves."""
        return self._published_directory().current

    def publish_entry(self, cell_id: str, url: str) -> Directory:
        """Write a cell's directory entry and publish (blocking: run it on a worker
        thread), as a cell's deploy does on AWS (it keeps the cell's epoch); the directory
        published. Every cell's stage then answers `ping` with the new version (`dv`)."""
        directory = self._published_directory()
        epoch = directory.current.epoch_of(cell_id)
        if epoch is None:
            raise ValueError(f"cell {cell_id} is not in the directory")
        directory.entries.write(cell_id, url, epoch)
        directory.publish()
        return directory.current

    def stage_variables(self, cell_id: str | None = None) -> dict[str, str]:
        """A stage's variables (the one stage's, or a cell's), as `ping` reads them."""
        gateway = self.cell(cell_id).gateway if cell_id else self._parts.cells[0].gateway
        return dict(gateway.stage_variables)

    def _published_directory(self) -> LocalDirectory:
        if self._config.one_stage:
            raise RuntimeError("a stack served as one stage has no directory: give it cells")
        if self._parts.directory is None:
            raise RuntimeError("the directory is published when the stack starts")
        return self._parts.directory

    # --- standbys and failover (issue 14, messenger_local.standby) -----------------

    @property
    def has_standby(self) -> bool:
        return self._config.standby

    def standby(self, cell_id: str) -> Standby:
        """A cell's primary, standby and replicator (only with standby)."""
        return self._parts.standbys[cell_id]

    def active(self, cell_id: str) -> LocalCell:
        """The side serving a cell: its primary, or its standby once failed over."""
        return self._parts.standbys.active(self.cell(cell_id))

    async def fail_over(self, cell_id: str, *, keep_primary: bool = False) -> Failover:
        """Fail a cell over to its standby as a region loss would (POST
        /_local/failover/CELL): the deployed switch, on this stack's tables and directory.
        `keep_primary`: a partial failover, the primary stays reachable and is fenced."""
        pair = self._parts.standbys[cell_id]
        failover = await pair.fail_over(
            self.clients.dynamodb, self._published_directory(), keep_primary=keep_primary
        )
        report_failover(failover, first=cell_id not in self._failovers_reported)
        self._failovers_reported.add(cell_id)
        return failover

    # --- what happened (messenger_local.activity) ----------------------------------

    @property
    def invocations(self) -> list[Invocation]:
        """Every invocation so far, in the order they ended."""
        return self._parts.activity.invocations

    def invocations_of(
        self, route: str, cell: str | None = None, *, user: str | None = None
    ) -> list[Invocation]:
        """The invocations of one route (or "authorizer", or a function Invoke ran:
        "Relay", "PresenceChanged") so far, in the order they ended; of one cell, or of
        every cell; of one user's connections, or of everyone's."""
        return self._parts.activity.invocations_of(route, cell, user=user)

    def connection_ids(self, cell: str | None = None) -> list[str]:
        """The connections open right now (of one cell's stage, or of every cell)."""
        return activity.connection_ids(self._parts.cells, cell)

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every invocation started so far (and those they caused, in any
        cell) has ended.

        A frame with no route response (ack, markSeen, sync) gives a client nothing to
        wait for; tests wait for this instead.
        """
        await activity.settled(self._parts.cells, timeout)

    def dump(self, cell: str | None = None) -> TableDump:
        """Every item of the stack's tables, or of one cell's, by table name. Blocking:
        call it with asyncio.to_thread."""
        if cell is None:
            self._single_stage()
            return activity.dump_tables(self.aws, self._parts.cells[0])
        return activity.dump_tables(self.aws, self.cell(cell))

    # --- lifecycle (messenger_local.lifecycle) -------------------------------------

    async def __aenter__(self) -> LocalStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start moto (unless shared), create the tables, load the functions, then open the
        port: a handshake is never answered before the functions can run it."""
        try:
            await lifecycle.start(self._config, self._parts, self.fail_over)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every connection (firing $disconnect), wait for the functions, stop all."""
        await lifecycle.stop(self._parts)
