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

`LocalStack(...)` takes, all keyword-only: `host`, `port`, `stage`, `aws_port`, `aws`
(an already started `EmbeddedAws` to share: faster when starting many stacks; each
stack makes its own tables, named after its random apiId, and then deletes them),
`idle_timeout` and `max_duration` (seconds), `environment` (extra variables for the
functions, e.g. `{"MESSAGE_TTL_SECONDS": "5"}`), `workers` (the worker pool size),
`integration_timeout`, `routes` and `authorizer` (default: the contract's),
`on_invocation` (called with each `Invocation`, e.g. to print its `line()`),
`state_dir` (a directory that keeps moto's tables and push applications across
restarts, see messenger_local.state; only with the stack's own moto).

The functions get their configuration only through environment variables, as on
Lambda: table names, `AWS_ENDPOINT_URL`, region and fake credentials,
`CONNECTIONS_ENDPOINT`, the powertools settings. Environment variables belong to the
process, so only one LocalStack can run in a process at a time (a second one raises
`StackAlreadyRunning`); stopping a stack restores the environment it found.
"""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import boto3

from messenger.config import LOCAL_CELL_EPOCH
from messenger.contract import (
    AUTHORIZER,
    METRICS_NAMESPACE,
    ROUTES,
    SERVICE_NAME,
    WORKERS,
    Authorizer,
    Env,
    Route,
)
from messenger_local.aws import ACCOUNT_ID, FAKE_CREDENTIALS, EmbeddedAws
from messenger_local.events import Api, new_api_id
from messenger_local.gateway import MAX_DURATION_SECONDS, Gateway, Limits
from messenger_local.invocations import Invocation
from messenger_local.lambdas import DEFAULT_WORKERS, INTEGRATION_TIMEOUT_SECONDS, Functions
from messenger_local.server import Server
from messenger_local.state import StateKeeper, new_manifest
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


class StackAlreadyRunning(RuntimeError):
    """Another LocalStack runs in this process: they would share environment variables."""


_running: LocalStack | None = None


class LocalStack:
    """The emulated API Gateway stage, the functions behind it and moto, as one async context."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
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
    ) -> None:
        if state_dir is not None and aws is not None:
            raise ValueError("state_dir keeps the stack's own moto: do not pass aws with it")
        self.host = host
        self.stage = stage
        self._port = port
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
        self.table_names: dict[str, str] = {}
        self.environment: dict[str, str] = {}
        self._saved_environment: dict[str, str | None] = {}
        self._server: Server | None = None
        self._functions: Functions | None = None
        self._gateway: Gateway | None = None

    # --- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port if self._server else self._port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.stage}"

    @property
    def http_url(self) -> str:
        """The stage over HTTP: CONNECTIONS_ENDPOINT, and boto3's endpoint_url."""
        return f"http://{self.host}:{self.port}/{self.stage}"

    @property
    def lambda_url(self) -> str:
        """Lambda's Invoke API, served here: AWS_ENDPOINT_URL_LAMBDA of the functions."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_url(self) -> str:
        return f"{self.http_url}/@connections"

    @property
    def aws_endpoint(self) -> str:
        return self._aws.endpoint

    @property
    def aws(self) -> EmbeddedAws:
        return self._aws

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every invocation started so far (and those they caused) has ended.

        A frame with no route response (ack, markSeen, sync) gives a client nothing to
        wait for; tests wait for this instead.
        """
        if self._gateway is not None:
            await self._gateway.settle(timeout)

    def connection_ids(self) -> list[str]:
        """The connections open right now."""
        return self._gateway.connections.ids() if self._gateway else []

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
            manifest = await loop.run_in_executor(None, self._state.load)
            self.restored = manifest is not None
        # Kept state names its tables after the API id it was saved with.
        api_id = manifest.api_id if manifest else new_api_id()
        handlers = [(route.function_name, route.handler) for route in self._routes]
        if self._authorizer is not None:
            handlers.append((self._authorizer.function_name, self._authorizer.handler))
        handlers += [(worker.function_name, worker.handler) for worker in WORKERS]
        self._functions = Functions(
            handlers,
            region=self._aws.region,
            account_id=ACCOUNT_ID,
            workers=self._workers,
            timeout_seconds=self._integration_timeout,
        )
        api = Api(
            api_id=api_id,
            stage=self.stage,
            domain_name=self.host,
            region=self._aws.region,
            account_id=ACCOUNT_ID,
        )
        self._gateway = Gateway(
            api, self._functions, self._routes, self._authorizer, self._limits, self._record
        )
        self._server = Server(self._gateway, self.host, self._port)
        await self._server.bind()
        # Once the port is known, https://{domainName}/{stage} names this server.
        self._gateway.api = replace(api, domain_name=f"{self.host}:{self.port}")
        prefix = f"messenger-{self.stage}-{api_id}-"
        tables = await loop.run_in_executor(None, self._aws.create_tables, prefix)
        push_apps = await loop.run_in_executor(None, self._aws.create_push_apps, prefix)
        self.table_names = {env.value: name for env, name in tables.items()}
        self._set_environment({**tables, **push_apps})
        await loop.run_in_executor(self._functions.pool, self._cold_start)
        if self._state is not None:
            manifest = manifest or new_manifest(api_id, self.stage, self._aws.region)
            await loop.run_in_executor(None, self._state.start, manifest)
        # What is loaded now (the functions' modules, boto3's service models, moto's
        # backends) lives as long as the stack: out of the collector's way, a full
        # collection no longer stalls every connection for a few hundred milliseconds.
        gc.collect()
        gc.freeze()
        # Only now, with every function loaded, can a handshake be answered.
        await self._server.listen()

    def _set_environment(self, resources: Mapping[Env, str]) -> None:
        variables: dict[str, str | None] = dict.fromkeys(_UNSAFE_AWS_VARIABLES)
        variables |= {
            "AWS_ENDPOINT_URL": self._aws.endpoint,
            "AWS_DEFAULT_REGION": self._aws.region,
            "AWS_REGION": self._aws.region,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "NO_PROXY": _no_proxy_with(self.host),
            "no_proxy": _no_proxy_with(self.host),
            Env.CONNECTIONS_ENDPOINT.value: self.http_url,
            # The functions invoke one another through the Invoke API this server serves.
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,
            # AWS_REGION above is moto's: the local cell's generation is named "local".
            Env.CELL_EPOCH.value: LOCAL_CELL_EPOCH,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # powertools keeps one metric set per process: with every function in one
            # process, concurrent flushes empty each other's sets and fail invocations
            # that on Lambda (one invocation per container) would succeed.
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        # ... and with metrics off, powertools warns on every flush that it has none.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        variables |= {env.value: value for env, value in resources.items()}
        variables |= self._extra_environment
        for name, value in variables.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.environment = {k: v for k, v in variables.items() if v is not None}

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
        assert self._functions is not None
        self._functions.load()
        services().connections(self.http_url)
        services().announcer.warm()

    async def stop(self) -> None:
        """Close every connection (firing $disconnect), wait for the functions, stop all."""
        global _running
        try:
            if self._gateway is not None:
                await self._gateway.close_all(1001, "Going away")
                await self._gateway.drain(_DRAIN_SECONDS)
            if self._server is not None:
                await self._server.stop()
            loop = asyncio.get_running_loop()
            if self._functions is not None:
                # Waits for handlers that outlived their integration timeout.
                await loop.run_in_executor(None, self._functions.shutdown)
            if self._state is not None:
                await loop.run_in_executor(None, self._state.stop)
                self._state = None
            await loop.run_in_executor(None, self._release_aws)
        finally:
            gc.unfreeze()
            self._restore_environment()
            self._forget_function_state()
            self._gateway = None
            self._functions = None
            if _running is self:
                _running = None

    def _release_aws(self) -> None:
        if self._owns_aws:
            self._aws.stop()
        elif self.table_names:
            self._aws.delete_tables(list(self.table_names.values()))

    def _forget_function_state(self) -> None:
        from messenger.wiring import use_services

        use_services(None)

    def _record(self, invocation: Invocation) -> None:
        self.invocations.append(invocation)
        if self._on_invocation is not None:
            self._on_invocation(invocation)

    def invocations_of(self, route: str) -> list[Invocation]:
        """The invocations of one route (or "authorizer") so far, in the order they ended."""
        return [invocation for invocation in self.invocations if invocation.route == route]


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
