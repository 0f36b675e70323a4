"""Starting and stopping a local stack: in what order its parts come up and go down.

Up: moto (unless shared) and kept state; the port, bound but not listening, so that
every stage, URL and environment can name it; the functions' clients and worker pools;
each cell (messenger_local.cell_factory); the functions loaded, as a cold start does; the
directory published (cells) and replication started (standbys); kept state saved from
then on; each cell's settle queue polled for the presence function
(messenger_local.settle_queue); and only then the port listens: a handshake is never
answered before the functions can run it.

Down: the settle queues' pollers, replication, every connection closed (firing
$disconnect) and drained in every cell, the port, the functions and their pools, kept
state saved once more, and what the stack made in a shared moto deleted (its queues
too).
"""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import SigningKey

from messenger.config import PRIMARY_SIDE, STANDBY_SIDE
from messenger.contract import PRESENCE_WORKER, Authorizer, Env, Route
from messenger.dal.server_keys import ServerKeys
from messenger.logic.epoch import epoch_name
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import Entry
from messenger_local import runtime
from messenger_local.activity import Activity
from messenger_local.aws import ACCOUNT_ID, EmbeddedAws
from messenger_local.cell_factory import CellFactory
from messenger_local.cells import (
    Addresses,
    LocalCell,
    Placement,
    by_cell,
    cell_of,
    mesh_bucket_name,
    one_cell,
)
from messenger_local.directory import LocalDirectory
from messenger_local.events import new_api_id
from messenger_local.function_services import FunctionClients, runtime_variables
from messenger_local.gateway import Limits
from messenger_local.lambda_api import Target
from messenger_local.moves import LocalMoves
from messenger_local.server import (
    AddRoutes,
    FailOver,
    Server,
    build_app,
    directory_site,
    failover_site,
    one_stage_site,
)
from messenger_local.settle_queue import QueueSource, poll_forever
from messenger_local.standby import Standbys
from messenger_local.state import StateKeeper, new_manifest
from messenger_protocol.cells import ShardMap

_DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class StackConfig:
    """What a stack is asked to be (LocalStack's arguments, checked)."""

    host: str
    stage: str
    # Served as one stage (no directory), or as cells named in a directory.
    one_stage: bool
    cell_ids: tuple[str, ...]
    shard_map: ShardMap
    limits: Limits
    environment: Mapping[str, str]  # the caller's extra variables for every function
    workers: int
    integration_timeout: float
    routes: tuple[Route, ...]
    authorizer: Authorizer | None
    state_dir: Path | None
    standby: bool
    first_directory_version: int
    # Signs every directory version (kept with the state by `messenger local`).
    directory_key: SigningKey

    @property
    def directory_cells(self) -> tuple[str, ...]:
        """The cells the directory names: () for a stack served as one stage."""
        return () if self.one_stage else self.cell_ids

    def placements(self, api_id: str) -> list[Placement]:
        """Where each side stands: the one cell, or the cells' primaries then standbys."""
        if self.one_stage:
            return [one_cell(self.stage, api_id)]
        sides = [False, True] if self.standby else [False]
        return [
            cell_of(self.stage, api_id, cell_id, standby=standby)
            for standby in sides
            for cell_id in self.cell_ids
        ]


@dataclass
class StackParts:
    """What a stack is made of: its AWS, port, standbys and log, and once started its
    cells, clients, pools, directory and kept state."""

    aws: EmbeddedAws
    owns_aws: bool
    server: Server
    standbys: Standbys
    activity: Activity
    cells: list[LocalCell] = field(default_factory=list)
    clients: FunctionClients | None = None
    pools: list[ThreadPoolExecutor] = field(default_factory=list)
    directory: LocalDirectory | None = None
    state: StateKeeper | None = None
    restored: bool = False  # True when the tables came back from kept state
    functions_started: bool = False
    # Each cell's settle queue's event source mapping (messenger_local.settle_queue).
    pollers: list[asyncio.Task[None]] = field(default_factory=list)


async def start(config: StackConfig, parts: StackParts, fail_over: FailOver) -> None:
    """Bring the parts up, in the order of the module doc (`fail_over` answers
    POST /_local/failover/CELL with standbys)."""
    loop = asyncio.get_running_loop()
    runtime.functions_started()
    parts.functions_started = True
    aws = parts.aws
    if parts.owns_aws:
        await loop.run_in_executor(None, aws.start)
    manifest = None
    if config.state_dir is not None:
        parts.state = StateKeeper(config.state_dir, aws)
        kept_cells = len(config.directory_cells)
        manifest = await loop.run_in_executor(None, parts.state.load, kept_cells)
        parts.restored = manifest is not None
    # Kept state names its tables after the API id it was saved with.
    api_id = manifest.api_id if manifest else new_api_id()
    await parts.server.bind()
    addresses = Addresses(config.host, parts.server.port, aws.region, ACCOUNT_ID)
    variables = runtime_variables(aws, addresses.lambda_url)
    parts.clients = await loop.run_in_executor(None, FunctionClients, aws, variables)
    routes_pool, relay_pool = (
        ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="lambda"),
        ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="relay"),
    )
    parts.pools = [routes_pool, relay_pool]
    placements = config.placements(api_id)
    factory = CellFactory(
        aws=aws,
        addresses=addresses,
        api_id=api_id,
        mesh_bucket="" if config.one_stage else mesh_bucket_name(api_id),
        directory_key=SeedDirectorySigner(config.directory_key).public_key(),
        runtime=variables,
        extra=config.environment,
        clients=parts.clients,
        routes=config.routes,
        authorizer=config.authorizer,
        limits=config.limits,
        routes_pool=routes_pool,
        relay_pool=relay_pool,
        workers=config.workers,
        integration_timeout=config.integration_timeout,
        record=parts.activity.record,
    )
    for placement in placements:
        parts.cells.append(await loop.run_in_executor(None, factory.make, placement))
    await loop.run_in_executor(routes_pool, _cold_start, parts.cells)
    site = await loop.run_in_executor(None, _site, config, parts, api_id, fail_over)
    parts.standbys.start(parts.cells)
    if parts.state is not None:
        kept = manifest or new_manifest(
            api_id, config.stage, aws.region, len(config.directory_cells)
        )
        await loop.run_in_executor(None, parts.state.start, kept)
    _freeze_what_is_loaded()
    # Only now, with every function loaded, can a handshake be answered.
    targets = {
        functions.deployed_name(name): Target(cell.gateway, functions, name)
        for cell in parts.cells
        for functions in cell.all_functions()
        for name in functions.names()
    }
    gateways = [cell.gateway for cell in parts.cells]
    for cell in parts.cells:
        parts.pollers.append(asyncio.create_task(_settle_queue_source(cell, aws)))
    await parts.server.listen(build_app(gateways, targets.get, site))


async def _settle_queue_source(cell: LocalCell, aws: EmbeddedAws) -> None:
    """The cell's settle queue as the presence function's event source, until stopped."""
    source = await asyncio.get_running_loop().run_in_executor(
        None,
        QueueSource,
        cell.services.sqs_client_factory(),
        cell.services.settings.presence_settle_queue,
        aws.region,
    )
    await poll_forever(source, Target(cell.gateway, cell.functions, PRESENCE_WORKER.function_name))


def _cold_start(cells: Sequence[LocalCell]) -> None:
    """What a Lambda container does once: import the handlers, build the clients.

    Runs before the first request, on a worker thread, so that configuration errors
    fail the start, and so that concurrent first invocations never create boto3 clients
    at the same time.
    """
    for cell in cells:
        for functions in cell.all_functions():
            functions.load()
        cell.services.connections(cell.http_url)
        cell.services.announcer.warm()


def _site(
    config: StackConfig, parts: StackParts, api_id: str, fail_over: FailOver
) -> list[AddRoutes]:
    """What the port serves besides the stages: the web app to the one stage, or the
    directory, published as on AWS (blocking: run it on a worker thread)."""
    if config.one_stage:
        return [one_stage_site(config.stage)]
    directory = LocalDirectory(
        parts.aws,
        mesh_bucket_name(api_id),
        config.shard_map,
        SeedDirectorySigner(config.directory_key),
        [cell.gateway for cell in parts.cells],
        config.first_directory_version,
    )
    parts.directory = directory
    directory.open(
        {
            cell.cell_id: Entry(cell.ws_url, epoch_name(cell.environment[Env.CELL_EPOCH], 0))
            for cell in by_cell(parts.cells).values()
        }
    )
    # As each side's deploy does on AWS: its relay key, and its Relay record.
    for cell in parts.cells:
        directory.publish_relay(
            ServerKeys(cell.services.dynamodb, cell.services.settings.users_table),
            cell.cell_id,
            STANDBY_SIDE if cell.standby else PRIMARY_SIDE,
            cell.relay_arn,
        )
    site = [directory_site(directory, parts.cells[0].stage)]
    site.append(LocalMoves(by_cell(parts.cells), directory).add_routes)
    if config.standby:
        site.append(failover_site(fail_over))
    return site


@functools.cache
def _freeze_what_is_loaded() -> None:
    """What is loaded by now (the functions' modules, boto3's service models, moto's
    backends) lives as long as the process: out of the collector's way, a full collection
    no longer stalls every connection for a few hundred milliseconds.

    Once a process: a stack started after another (a test session starts hundreds in
    one process) loads little that is new, and another full collection would cost each
    a quarter of a second of CPU for nothing the collector would not do by itself."""
    gc.collect()
    gc.freeze()


async def stop(parts: StackParts) -> None:
    """Take the parts down, in the order of the module doc (what started of them)."""
    try:
        for poller in parts.pollers:
            poller.cancel()
        await asyncio.gather(*parts.pollers, return_exceptions=True)
        parts.pollers = []
        await parts.standbys.stop()
        gateways = [cell.gateway for cell in parts.cells]
        await asyncio.gather(*(gateway.close_all(1001, "Going away") for gateway in gateways))
        # A cell's $disconnect may invoke another cell's functions: drain until all are
        # quiet.
        for _ in range(3):
            if not any(gateway.busy for gateway in gateways):
                break
            for gateway in gateways:
                await gateway.drain(_DRAIN_SECONDS)
        await parts.server.stop()
        loop = asyncio.get_running_loop()
        # Waits for handlers that outlived their integration timeout.
        for cell in parts.cells:
            for functions in cell.all_functions():
                await loop.run_in_executor(None, functions.shutdown)
        for pool in parts.pools:
            await loop.run_in_executor(
                None, functools.partial(pool.shutdown, wait=True, cancel_futures=True)
            )
        if parts.state is not None:
            await loop.run_in_executor(None, parts.state.stop)
            parts.state = None
        await loop.run_in_executor(None, _release_aws, parts)
    finally:
        gc.unfreeze()
        parts.pools = []
        if parts.functions_started:
            runtime.functions_stopped()
            parts.functions_started = False


def _release_aws(parts: StackParts) -> None:
    if parts.owns_aws:
        parts.aws.stop()
        return
    tables = [name for cell in parts.cells for name in cell.table_names.values()]
    if tables:
        parts.aws.delete_tables(tables)
    queues = [cell.services.settings.presence_settle_queue for cell in parts.cells]
    if queues:
        parts.aws.delete_settle_queues(queues)
    if parts.directory is not None:
        parts.directory.close()
