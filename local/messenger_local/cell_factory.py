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
from dataclasses import dataclass

from messenger.contract import RELAY, WORKERS, Authorizer, Route
from messenger.wiring import serving
from messenger_local.aws import EmbeddedAws
from messenger_local.cells import Addresses, LocalCell, Placement, cell_environment
from messenger_local.events import Api
from messenger_local.function_services import FunctionClients
from messenger_local.gateway import Gateway, Limits
from messenger_local.invocations import Invocation
from messenger_local.lambdas import Around, Functions


@dataclass(frozen=True, kw_only=True)
class CellFactory:
    """Makes the cells of one stack, with what they all share: the embedded AWS and the
    functions' clients, the routes, the limits, the worker pools, the invocation log."""

    aws: EmbeddedAws
    addresses: Addresses
    api_id: str
    # The directory's bucket, where each side's Relay record and the signed directory are
    # ("" for one cell), and the directory key's public half the cells believe it by.
    mesh_bucket: str
    directory_key: str
    runtime: Mapping[str, str]  # what every function is given (function_services)
    extra: Mapping[str, str]  # the stack's caller's variables, given last
    clients: FunctionClients
    routes: Sequence[Route]
    authorizer: Authorizer | None
    limits: Limits
    routes_pool: ThreadPoolExecutor
    # The Relays' own pool: a route's function waits for a peer's Relay, which must
    # never wait for a worker that the waiting functions hold.
    relay_pool: ThreadPoolExecutor
    workers: int
    integration_timeout: float
    record: Callable[[Invocation], None]

    def make(self, placement: Placement) -> LocalCell:
        """The cell at `placement`, its tables and push apps created (blocking: run it on
        a worker thread)."""
        tables = self.aws.create_tables(placement.resource_prefix)
        push_apps = self.aws.create_push_apps(placement.resource_prefix)
        settle_queue = self.aws.create_settle_queue(placement.resource_prefix)
        resources = {
            env.value: name for env, name in {**tables, **push_apps, **settle_queue}.items()
        }
        # What Lambda would give each function of the cell; the stack's extra variables
        # last, so that a test may set any of them (CELL_EPOCH, the rate limits...).
        environment = {
            **self.runtime,
            **cell_environment(placement, self.addresses, self.mesh_bucket, self.directory_key),
            **resources,
            **self.extra,
        }
        services = self.clients.services(environment)
        in_the_cell = functools.partial(serving, services)
        functions = self._functions(self._handlers(), self.routes_pool, in_the_cell, placement)
        relay = self._functions(
            [(RELAY.function_name, RELAY.handler)], self.relay_pool, in_the_cell, placement
        )
        api = Api(
            api_id=self.api_id,
            stage=placement.stage,
            # https://{domainName}/{stage} names this server, as on AWS the API's.
            domain_name=f"{self.addresses.host}:{self.addresses.port}",
            region=self.addresses.region,
            account_id=self.addresses.account_id,
        )
        gateway = Gateway(
            api,
            self.addresses.port,
            functions,
            self.routes,
            self.authorizer,
            self.limits,
            self.record,
        )
        return LocalCell(
            placement=placement,
            addresses=self.addresses,
            gateway=gateway,
            functions=functions,
            relay=relay,
            table_names={env.value: name for env, name in tables.items()},
            environment=environment,
            services=services,
        )

    def _handlers(self) -> list[tuple[str, str]]:
        """The routes', the authorizer's and the workers' functions: name, handler."""
        handlers = [(route.function_name, route.handler) for route in self.routes]
        if self.authorizer is not None:
            handlers.append((self.authorizer.function_name, self.authorizer.handler))
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
            region=self.addresses.region,
            account_id=self.addresses.account_id,
            workers=self.workers,
            timeout_seconds=self.integration_timeout,
            pool=pool,
            around=around,
            name_prefix=placement.function_prefix,
        )
