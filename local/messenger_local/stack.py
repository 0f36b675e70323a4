"""The whole messenger in one process: the emulated WebSocket API, the real functions, moto.

In-process API (tests, the client SDK's tests, load tests)::

    from messenger_local import LocalStack

    async with LocalStack(port=0, aws_port=0, idle_timeout=2.0) as stack:
        stack.ws_url            # "ws://127.0.0.1:54321/local"
        stack.connections_url   # "http://127.0.0.1:54321/local/@connections"
        stack.aws_endpoint      # "http://127.0.0.1:54322" (moto)
        stack.table_names       # {"USERS_TABLE": "messenger-local-<apiId>-Users", ...}
        stack.environment       # every variable the functions were given
        stack.invocations       # every Invocation so far, in the order they ended
        await stack.settled()   # until no invocation is in flight

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

With cells, `ws_url`, `http_url`, `connections_url` and `table_names` (one stage's)
raise: every cell has its own (`stack.cell(id)`).

`LocalStack(...)` takes, all keyword-only: `host`, `port`, `stage` (with cells: the
deployment's name in function and table names; each cell's stage is its id), `cells`
(the number of cells; None, the default: one stage without cells, as before cells
existed), `aws_port`, `aws` (an already started `EmbeddedAws` to share: faster when
starting many stacks; each stack makes its own tables, named after its random apiId,
and then deletes them), `idle_timeout` and `max_duration` (seconds), `environment`
(extra variables for the functions of every cell, e.g. `{"MESSAGE_TTL_SECONDS": "5"}`),
`workers` (the worker pool size; with cells, each Relay runs on a second pool of that
size), `integration_timeout`, `routes` and `authorizer` (default: the contract's),
`on_invocation` (called with each `Invocation`, e.g. to print its `line()`),
`state_dir` (a directory that keeps moto's tables and push applications across
restarts, see messenger_local.state; only with the stack's own moto).

The functions get their configuration only through environment variables, as on
Lambda: table names, `AWS_ENDPOINT_URL`, region and fake credentials,
`CONNECTIONS_ENDPOINT`, the powertools settings. Environment variables belong to the
process, so only one LocalStack can run in a process at a time (a second one raises
`StackAlreadyRunning`); stopping a stack restores the environment it found. With
cells, the process environment holds only what every cell shares (AWS endpoints and
credentials, powertools); each cell's own variables reach its functions through its
Services (messenger_local.cells).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import boto3

from messenger.config import LOCAL_CELL_EPOCH, settings_from
from messenger.contract import (
    AUTHORIZER,
    METRICS_NAMESPACE,
    RELAY,
    ROUTES,
    SERVICE_NAME,
    WORKERS,
    Authorizer,
    Env,
    Route,
)
from messenger.wiring import CLIENT_CONFIG, Services, lambda_client
from messenger_local.aws import ACCOUNT_ID, FAKE_CREDENTIALS, EmbeddedAws
from messenger_local.cells import (
    LocalCell,
    by_cell,
    cell_environment,
    cell_ids,
    function_prefix,
    standby_stage,
)
from messenger_local.events import Api, new_api_id
from messenger_local.gateway import MAX_DURATION_SECONDS, Gateway, Limits
from messenger_local.invocations import Invocation
from messenger_local.lambda_api import Target
from messenger_local.lambdas import (
    DEFAULT_WORKERS,
    INTEGRATION_TIMEOUT_SECONDS,
    Around,
    Functions,
)
from messenger_local.replication import Replicator
from messenger_local.server import DIRECTORY_PATH, Server
from messenger_local.standby import DEFAULT_REPLICATION_LAG_SECONDS, Failover, Standby
from messenger_local.state import StateKeeper, new_manifest
from messenger_protocol.cells import Directory, ShardMap
from messenger_protocol.limits import IDLE_TIMEOUT_SECONDS

# Settings that could send the functions' AWS calls anywhere but the embedded moto.
_UNSAFE_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
    "AWS_ENDPOINT_URL_LAMBDA",
)
_DRAIN_SECONDS = 10.0
# The directory's first version; each failover (standby) adds one.
DIRECTORY_VERSION = 1


class StackAlreadyRunning(RuntimeError):
    """Another LocalStack runs in this process: they would share environment variables."""


_running: LocalStack | None = None


class LocalStack:
    """The emulated API Gateway stage (a stage per cell), the functions behind it and moto,
    as one async context."""

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
    ) -> None:
        if state_dir is not None and aws is not None:
            raise ValueError("state_dir keeps the stack's own moto: do not pass aws with it")
        if standby and cells is None:
            raise ValueError("a standby is a cell's: give cells with standby")
        if standby and state_dir is not None:
            raise ValueError(
                "standbys and kept state do not go together (the replicas "
                "would come back without what replication had pending)"
            )
        if replication_lag < 0:
            raise ValueError("the replication lag cannot be negative")
        self.host = host
        self.stage = stage
        self._port = port
        self._cell_ids = tuple(cell_ids(cells)) if cells is not None else ()
        self.shard_map = ShardMap.even(list(self._cell_ids)) if self._cell_ids else None
        self._owns_aws = aws is None
        self._aws = aws or EmbeddedAws(host=host, port=aws_port)
        self._limits = Limits(idle_timeout=idle_timeout, max_duration=max_duration)
        self._extra_environment = dict(environment or {})
        self._workers = workers
        self._integration_timeout = integration_timeout
        self._routes = tuple(routes)
        self._authorizer = authorizer
        self._on_invocation = on_invocation
        self.state_dir = state_dir
        self._state: StateKeeper | None = None
        self.restored = False  # True when the tables came back from state_dir
        self.invocations: list[Invocation] = []
        self.environment: dict[str, str] = {}
        self._saved_environment: dict[str, str | None] = {}
        self._server: Server | None = None
        # Every stage: the cells' primaries, then their standbys (with standby).
        self._cells: list[LocalCell] = []
        self._with_standby = standby
        self.replication_lag = replication_lag
        self._standbys: dict[str, Standby] = {}
        self._directory_version = DIRECTORY_VERSION
        self._pools: list[ThreadPoolExecutor] = []  # shared by the cells' functions

    # --- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port if self._server else self._port

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
        return self._cells[0].table_names if self._cells else {}

    @property
    def aws_endpoint(self) -> str:
        return self._aws.endpoint

    @property
    def aws(self) -> EmbeddedAws:
        return self._aws

    def _single_stage(self) -> str:
        if self._cell_ids:
            raise RuntimeError(
                "a stack of cells has a stage, URLs and tables per cell: use "
                "stack.cell_url(cell), stack.cell(cell).table_names, stack.directory_url"
            )
        return self.stage

    # --- cells ---------------------------------------------------------------------

    @property
    def cell_ids(self) -> tuple[str, ...]:
        """The cells' ids, c0, c1, ...; () for a stack without cells."""
        return self._cell_ids

    def cell(self, cell_id: str) -> LocalCell:
        """One cell (once started): its URLs, tables, environment and functions."""
        try:
            return by_cell(self._cells)[cell_id]
        except KeyError:
            raise KeyError(f"no cell {cell_id!r} (cells: {', '.join(self._cell_ids)})") from None

    def cell_url(self, cell_id: str) -> str:
        """The WebSocket URL of a cell: ws://HOST:PORT/<cell>."""
        return self.cell(cell_id).ws_url

    def home_of(self, user_id: str) -> str:
        """The user's home cell (docs/protocol.md §6)."""
        if self.shard_map is None:
            raise RuntimeError("a stack without cells has no home cells")
        return self.shard_map.home_of(user_id)

    def home_url(self, user_id: str) -> str:
        """The WebSocket URL the user connects to."""
        return self.cell_url(self.home_of(user_id))

    @property
    def directory_url(self) -> str:
        """GET it for the directory document (docs/protocol.md §6): only with cells."""
        if self.shard_map is None:
            raise RuntimeError("a stack without cells serves no directory")
        return f"http://{self.host}:{self.port}{DIRECTORY_PATH}"

    @property
    def directory(self) -> Directory:
        """The directory this stack serves."""
        if self.shard_map is None:
            raise RuntimeError("a stack without cells serves no directory")
        urls = {cell_id: self.active(cell_id).ws_url for cell_id in self._cell_ids}
        return Directory(self._directory_version, urls, self.shard_map)

    # --- standbys and failover (issue 14, messenger_local.standby) -----------------

    @property
    def has_standby(self) -> bool:
        return self._with_standby

    def standby(self, cell_id: str) -> Standby:
        """A cell's primary, standby and replicator (only with standby)."""
        try:
            return self._standbys[cell_id]
        except KeyError:
            raise KeyError(f"no standby for cell {cell_id!r}") from None

    def active(self, cell_id: str) -> LocalCell:
        """The side serving a cell: its primary, or its standby once failed over."""
        standby = self._standbys.get(cell_id)
        return standby.active if standby is not None else self.cell(cell_id)

    async def fail_over(self, cell_id: str) -> Failover:
        """Fail a cell over to its standby as a region loss would (POST
        /_local/failover/CELL), and point the directory at the standby."""
        standby = self.standby(cell_id)
        first = standby.failover is None
        failover = await standby.fail_over(self._aws.client("dynamodb"))
        if first:
            self._directory_version += 1
        return failover

    # --- what happened -------------------------------------------------------------

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every invocation started so far (and those they caused, in any
        cell) has ended.

        A frame with no route response (ack, markSeen, sync) gives a client nothing to
        wait for; tests wait for this instead.
        """
        async with asyncio.timeout(timeout):
            while any(cell.gateway.busy for cell in self._cells):
                for cell in self._cells:
                    await cell.gateway.settle(timeout)

    def connection_ids(self, cell: str | None = None) -> list[str]:
        """The connections open right now (of one cell, or of every cell)."""
        return [
            connection_id
            for each in self._cells
            if cell is None or each.stage == cell
            for connection_id in each.gateway.connections.ids()
        ]

    def invocations_of(
        self, route: str, cell: str | None = None, *, user: str | None = None
    ) -> list[Invocation]:
        """The invocations of one route (or "authorizer", or a function Invoke ran:
        "Relay", "PresenceChanged") so far, in the order they ended; of one cell, or of
        every cell; of one user's connections, or of everyone's."""
        return [
            invocation
            for invocation in self.invocations
            if invocation.route == route
            and (cell is None or invocation.cell == cell)
            and (user is None or invocation.user == user)
        ]

    # --- lifecycle -----------------------------------------------------------------

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
        global _running
        if _running is not None:
            raise StackAlreadyRunning("one LocalStack per process: stop the other one first")
        _running = self
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._owns_aws:
            await loop.run_in_executor(None, self._aws.start)
        manifest = None
        if self.state_dir is not None:
            self._state = StateKeeper(self.state_dir, self._aws)
            manifest = await loop.run_in_executor(None, self._state.load, len(self._cell_ids))
            self.restored = manifest is not None
        # Kept state names its tables after the API id it was saved with.
        api_id = manifest.api_id if manifest else new_api_id()
        if self._cell_ids:
            self._cells = [self._new_cell(api_id, cell_id) for cell_id in self._cell_ids]
            if self._with_standby:
                self._cells += [
                    self._new_cell(api_id, cell_id, standby=True) for cell_id in self._cell_ids
                ]
        else:
            self._cells = [self._new_cell(api_id, None)]
        targets = {
            functions.deployed_name(name): Target(cell.gateway, functions, name)
            for cell in self._cells
            for functions in cell.all_functions()
            for name in functions.names()
        }
        self._server = Server(
            [cell.gateway for cell in self._cells],
            self.host,
            self._port,
            targets.get,
            (lambda: self.directory.to_wire()) if self._cell_ids else None,
            self._answer_failover if self._with_standby else None,
        )
        await self._server.bind()
        for cell in self._cells:
            # Once the port is known, https://{domainName}/{stage} names this server.
            cell.gateway.api = replace(cell.gateway.api, domain_name=f"{self.host}:{self.port}")
            prefix = f"messenger-{self.stage}-{api_id}-"
            if cell.cell_id is not None:
                prefix += f"{cell.stage}-"
            tables = await loop.run_in_executor(None, self._aws.create_tables, prefix)
            push_apps = await loop.run_in_executor(None, self._aws.create_push_apps, prefix)
            cell.table_names = {env.value: name for env, name in tables.items()}
            cell.environment = self._cell_variables(cell, {**tables, **push_apps})
        self._set_environment()
        await loop.run_in_executor(self._cells[0].functions.pool, self._cold_start)
        self._start_replication()
        if self._state is not None:
            manifest = manifest or new_manifest(
                api_id, self.stage, self._aws.region, len(self._cell_ids)
            )
            await loop.run_in_executor(None, self._state.start, manifest)
        # What is loaded now (the functions' modules, boto3's service models, moto's
        # backends) lives as long as the stack: out of the collector's way, a full
        # collection no longer stalls every connection for a few hundred milliseconds.
        gc.collect()
        gc.freeze()
        # Only now, with every function loaded, can a handshake be answered.
        await self._server.listen()

    def _start_replication(self) -> None:
        """One replicator per cell with a standby: the primary's tables to the standby's."""
        primaries = by_cell(self._cells)
        for cell in self._cells:
            if not cell.standby:
                continue
            assert cell.cell_id is not None
            primary = primaries[cell.cell_id]
            tables = {
                primary.table_names[env]: cell.table_names[env] for env in primary.table_names
            }
            replicator = Replicator(
                tables, lag=self.replication_lag, gate=self._aws.gate, region=self._aws.region
            )
            replicator.start()
            self._standbys[cell.cell_id] = Standby(primary, cell, replicator)

    async def _answer_failover(self, cell_id: str) -> Failover:
        if cell_id not in self._standbys:
            raise KeyError(cell_id)
        return await self.fail_over(cell_id)

    def _new_cell(self, api_id: str, cell_id: str | None, standby: bool = False) -> LocalCell:
        """A cell's stage and functions (its tables and environment come once bound)."""
        handlers = [(route.function_name, route.handler) for route in self._routes]
        if self._authorizer is not None:
            handlers.append((self._authorizer.function_name, self._authorizer.handler))
        handlers += [(worker.function_name, worker.handler) for worker in WORKERS]
        stage = cell_id or self.stage
        if standby and cell_id is not None:
            stage = standby_stage(cell_id)
        api = Api(
            api_id=api_id,
            stage=stage,
            domain_name=self.host,
            region=self._aws.region,
            account_id=ACCOUNT_ID,
        )
        if cell_id is None:
            functions = self._functions(handlers)
            gateway = Gateway(
                api, functions, self._routes, self._authorizer, self._limits, self._record
            )
            return LocalCell(None, self.host, gateway, functions)
        if not self._pools:
            self._pools = [
                ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="lambda"),
                ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="relay"),
            ]
        routes_pool, relay_pool = self._pools
        # The cell's Services exist once started; each invocation runs in them.
        cell: LocalCell | None = None

        def serving_the_cell() -> AbstractContextManager[None]:
            assert cell is not None
            return cell.serving()

        prefix = function_prefix(self.stage, stage)
        functions = self._functions(handlers, routes_pool, serving_the_cell, prefix)
        relay = self._functions(
            [(RELAY.function_name, RELAY.handler)], relay_pool, serving_the_cell, prefix
        )

        def record(invocation: Invocation) -> None:
            self._record(replace(invocation, cell=stage))

        gateway = Gateway(api, functions, self._routes, self._authorizer, self._limits, record)
        cell = LocalCell(cell_id, self.host, gateway, functions, relay, standby=standby)
        return cell

    def _functions(
        self,
        handlers: list[tuple[str, str]],
        pool: ThreadPoolExecutor | None = None,
        around: Around | None = None,
        name_prefix: str = "",
    ) -> Functions:
        return Functions(
            handlers,
            region=self._aws.region,
            account_id=ACCOUNT_ID,
            workers=self._workers,
            timeout_seconds=self._integration_timeout,
            pool=pool,
            around=around,
            name_prefix=name_prefix,
        )

    def _shared_variables(self) -> dict[str, str | None]:
        """What every function of every cell is given (None: removed)."""
        variables: dict[str, str | None] = dict.fromkeys(_UNSAFE_AWS_VARIABLES)
        variables |= {
            "AWS_ENDPOINT_URL": self._aws.endpoint,
            "AWS_DEFAULT_REGION": self._aws.region,
            "AWS_REGION": self._aws.region,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "NO_PROXY": _no_proxy_with(self.host),
            "no_proxy": _no_proxy_with(self.host),
            # The functions invoke one another through the Invoke API this server serves.
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # powertools keeps one metric set per process: with every function in one
            # process, concurrent flushes empty each other's sets and fail invocations
            # that on Lambda (one invocation per container) would succeed.
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        return variables | self._extra_environment

    def _cell_variables(self, cell: LocalCell, resources: Mapping[Env, str]) -> dict[str, str]:
        """What one cell's functions are given besides the shared variables."""
        if cell.cell_id is None:
            own: dict[Env, str] = {
                Env.CONNECTIONS_ENDPOINT: cell.http_url,
                # AWS_REGION is moto's: the local cell's generation is named "local".
                Env.CELL_EPOCH: LOCAL_CELL_EPOCH,
            }
        else:
            assert self.shard_map is not None
            peers = [peer for peer in by_cell(self._cells).values() if peer.cell_id != cell.cell_id]
            standbys = {each.cell_id: each for each in self._cells if each.standby}
            own = cell_environment(cell, peers, self.shard_map, standbys)  # type: ignore[arg-type]
        variables = {env.value: value for env, value in {**own, **resources}.items()}
        return variables | self._extra_environment

    def _set_environment(self) -> None:
        """The process environment: the shared variables, and without cells the one
        cell's own as well (as on Lambda, where each function has its own process)."""
        variables = self._shared_variables()
        if not self._cell_ids:
            variables |= self._cells[0].environment
        # ... and with metrics off, powertools warns on every flush that it has none.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        for name, value in variables.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.environment = {k: v for k, v in variables.items() if v is not None}
        if self._cell_ids:
            for cell in self._cells:
                cell.environment = self.environment | cell.environment
        else:
            self._cells[0].environment = dict(self.environment)

    def _restore_environment(self) -> None:
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()

    def _cold_start(self) -> None:
        """What a Lambda container does once: import the handlers, build the clients.

        Runs before the first request, on a worker thread, so that configuration
        errors fail the start, and so that concurrent first invocations never
        create boto3 clients at the same time (boto3's default session is not
        thread-safe while it sets itself up).
        """
        from messenger.wiring import services, use_services

        _forget_other_credentials()
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        # The functions' clients (made below, from boto3's default session) reach moto
        # without the HTTP hop; still at AWS_ENDPOINT_URL, through real botocore.
        self._aws.serve_in_process(boto3.DEFAULT_SESSION)
        use_services(None)
        for cell in self._cells:
            for functions in cell.all_functions():
                functions.load()
        if not self._cell_ids:
            services().connections(self.http_url)
            services().announcer.warm()
            return
        # One process, several cells: each cell's Services from its own environment
        # (the clients, which only know the shared endpoints, are shared).
        dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
        invoker = lambda_client()
        for cell in self._cells:
            cell.services = Services(
                settings=settings_from(cell.environment),
                dynamodb=dynamodb,
                lambda_client_factory=lambda: invoker,
            )
            cell.services.connections(cell.http_url)
            cell.services.announcer.warm()

    async def stop(self) -> None:
        """Close every connection (firing $disconnect), wait for the functions, stop all."""
        global _running
        try:
            for standby in self._standbys.values():
                await asyncio.to_thread(standby.replicator.stop)
            gateways = [cell.gateway for cell in self._cells]
            await asyncio.gather(*(gateway.close_all(1001, "Going away") for gateway in gateways))
            # A cell's $disconnect may invoke another cell's functions: drain until all
            # are quiet.
            for _ in range(3):
                if not any(gateway.busy for gateway in gateways):
                    break
                for gateway in gateways:
                    await gateway.drain(_DRAIN_SECONDS)
            if self._server is not None:
                await self._server.stop()
            loop = asyncio.get_running_loop()
            # Waits for handlers that outlived their integration timeout.
            for cell in self._cells:
                for functions in cell.all_functions():
                    await loop.run_in_executor(None, functions.shutdown)
            for pool in self._pools:
                await loop.run_in_executor(
                    None, functools.partial(pool.shutdown, wait=True, cancel_futures=True)
                )
            if self._state is not None:
                await loop.run_in_executor(None, self._state.stop)
                self._state = None
            await loop.run_in_executor(None, self._release_aws)
        finally:
            gc.unfreeze()
            self._restore_environment()
            self._forget_function_state()
            self._pools = []
            if _running is self:
                _running = None

    def _release_aws(self) -> None:
        if self._owns_aws:
            self._aws.stop()
            return
        tables = [name for cell in self._cells for name in cell.table_names.values()]
        if tables:
            self._aws.delete_tables(tables)

    def _forget_function_state(self) -> None:
        from messenger.wiring import use_services

        use_services(None)

    def _record(self, invocation: Invocation) -> None:
        self.invocations.append(invocation)
        if self._on_invocation is not None:
            self._on_invocation(invocation)


def _forget_other_credentials() -> None:
    """Drop boto3's default session if it holds credentials other than our fake ones.

    A session resolves its credentials once, with its first client, and keeps them
    (region and endpoint are read again for every client). A new session costs some
    100 ms of model loading, so we only pay it when it matters.
    """
    session = boto3.DEFAULT_SESSION
    if session is None:
        return
    credentials = session.get_credentials()
    if credentials is None or credentials.access_key != FAKE_CREDENTIALS["aws_access_key_id"]:
        boto3.DEFAULT_SESSION = None


def _no_proxy_with(host: str) -> str:
    """NO_PROXY extended with our host: local endpoints never go through a proxy."""
    current = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    hosts = [h for h in current.split(",") if h]
    return ",".join([*hosts, host] if host not in hosts else hosts)
