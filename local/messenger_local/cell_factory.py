"""Making a stack's cells: for each placement (messenger_local.cells), its tables and push
apps in the embedded AWS, its functions' environment and Services, its functions on the
stack's worker pools, and the stage that serves them.

Every cell is made the same way, the one cell of a stack without `cells` included: its
functions always run inside its own Services (`LocalCell.serving`), never the process's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from messenger.contract import RELAY, WORKERS, Authorizer, Route
from messenger.wiring import serving
from messenger_local.aws import EmbeddedAws
from messenger_local.cells import Addresses, LocalCell, Placement, cell_environment
from messenger_local.events import Api
from messenger_local.function_services import FunctionClients
from messenger_local.gateway import Gateway, Limits
from messenger_local.invocations import Invocation
from messenger_local.lambdas import Around, Functions
from messenger_protocol.cells import ShardMap


class CellFactory:
    """Makes the cells of one stack, with what they all share: the embedded AWS and the
    functions' clients, the routes, the limits, the worker pools, the invocation log."""

    def __init__(
        self,
        *,
        aws: EmbeddedAws,
        addresses: Addresses,
        api_id: str,
        shard_map: ShardMap,
        placements: Sequence[Placement],
        runtime: Mapping[str, str],
        extra: Mapping[str, str],
        clients: FunctionClients,
        routes: Sequence[Route],
        authorizer: Authorizer | None,
        limits: Limits,
        pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
        workers: int,
        integration_timeout: float,
        record: Callable[[Invocation], None],
    ) -> None:
        self._aws = aws
        self._addresses = addresses
        self._api_id = api_id
        self._shard_map = shard_map
        self._placements = tuple(placements)
        self._runtime = dict(runtime)
        self._extra = dict(extra)
        self._clients = clients
        self._routes = tuple(routes)
        self._authorizer = authorizer
        self._limits = limits
        self._routes_pool, self._relay_pool = pools
        self._workers = workers
        self._integration_timeout = integration_timeout
        self._record = record

    def make(self, placement: Placement) -> LocalCell:
        """The cell at `placement`, its tables and push apps created (blocking: run it on
        a worker thread)."""
        tables = self._aws.create_tables(placement.resource_prefix)
        push_apps = self._aws.create_push_apps(placement.resource_prefix)
        resources = {env.value: name for env, name in {**tables, **push_apps}.items()}
        # What Lambda would give each function of the cell; the stack's extra variables
        # last, so that a test may set any of them (CELL_EPOCH, the rate limits...).
        environment = (
            self._runtime
            | cell_environment(placement, self._addresses, self._shard_map, self._placements)
            | resources
            | self._extra
        )
        services = self._clients.services(environment)
        in_the_cell = functools.partial(serving, services)
        functions = self._functions(self._handlers(), self._routes_pool, in_the_cell, placement)
        relay = self._functions(
            [(RELAY.function_name, RELAY.handler)], self._relay_pool, in_the_cell, placement
        )
        api = Api(
            api_id=self._api_id,
            stage=placement.stage,
            # https://{domainName}/{stage} names this server, as on AWS the API's.
            domain_name=f"{self._addresses.host}:{self._addresses.port}",
            region=self._addresses.region,
            account_id=self._addresses.account_id,
        )
        gateway = Gateway(
            api,
            self._addresses.port,
            functions,
            self._routes,
            self._authorizer,
            self._limits,
            self._record,
        )
        return LocalCell(
            placement=placement,
            addresses=self._addresses,
            gateway=gateway,
            functions=functions,
            relay=relay,
            table_names={env.value: name for env, name in tables.items()},
            environment=environment,
            services=services,
        )

    def _handlers(self) -> list[tuple[str, str]]:
        """The routes', the authorizer's and the workers' functions: name, handler."""
        handlers = [(route.function_name, route.handler) for route in self._routes]
        if self._authorizer is not None:
            handlers.append((self._authorizer.function_name, self._authorizer.handler))
        return handlers + [(worker.function_name, worker.handler) for worker in WORKERS]

    def _functions(
        self,
        handlers: list[tuple[str, str]],
        pool: ThreadPoolExecutor,
        around: Around,
        placement: Placement,
    ) -> Functions:
        return Functions(
            handlers,
            region=self._addresses.region,
            account_id=self._addresses.account_id,
            workers=self._workers,
            timeout_seconds=self._integration_timeout,
            pool=pool,
            around=around,
            name_prefix=placement.function_prefix,
        )
