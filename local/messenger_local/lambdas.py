"""The Lambda side: load the real handlers by their dotted paths and invoke them.

Invocations run concurrently on a worker pool, each with a context object carrying
what Lambda's has (`aws_request_id`, `function_name`, `get_remaining_time_in_millis`,
...). Handlers block (boto3 calls, @connections posts back to this very process),
so they never run on the event loop.

Unlike Lambda, every function shares this one process: module state such as the
cached `messenger.wiring.services()` is shared between routes and invocations. What
can be kept apart is: each invocation runs in a fresh `contextvars.Context`, so the
logging keys a function sets for itself (powertools' thread-safe keys) name that
invocation only, and a stack of several cells runs each of its cell's invocations
inside `around()` (that cell's `messenger.wiring.serving(...)`: its own Services, made
from its own environment).

The integration timeout counts from when the handler starts running, as API Gateway's
counts from its call to Lambda: an invocation that waits for a free worker (a burst of
a thousand `$disconnect`) is not timed out for the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LambdaHandler = Callable[[dict[str, Any], Any], Any]
# What an invocation runs inside (in its own contextvars.Context): a cell's configuration.
Around = Callable[[], AbstractContextManager[Any]]

# API Gateway gives up on an integration after 29 s, whatever the function's timeout.
INTEGRATION_TIMEOUT_SECONDS = 29.0
MEMORY_MB = 256
# Invocations running at once. Every function runs in this one process under one GIL,
# and moto serves one request at a time: past a few threads, more only contend (24
# senders in flight delivered 65 messages a second on 8 workers, 46 on 32). A burst
# beyond them queues; the integration timeout does not count the wait.
DEFAULT_WORKERS = 8


def load_handler(dotted: str) -> LambdaHandler:
    """Import "package.module.function" (as Lambda's handler setting names it)."""
    module_name, _, function_name = dotted.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    if not callable(handler):
        raise TypeError(f"{dotted} is not callable")
    return handler


@dataclass
class LambdaContext:
    """The attributes of Lambda's Python context object."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    deadline_monotonic: float
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = MEMORY_MB
    log_group_name: str = ""
    log_stream_name: str = field(
        default_factory=lambda: f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    )

    def __post_init__(self) -> None:
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    @classmethod
    def for_invocation(
        cls,
        function_name: str,
        *,
        region: str,
        account_id: str,
        timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> LambdaContext:
        """The context of one new invocation of a function, with a fresh request id."""
        return cls(
            function_name=function_name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{function_name}",
            deadline_monotonic=time.monotonic() + timeout_seconds,
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


@dataclass
class _Run:
    """One invocation on a worker thread: when it started and ended (monotonic seconds)."""

    handler: LambdaHandler
    payload: str
    context: LambdaContext
    timeout_seconds: float
    on_start: Callable[[], None]
    around: Around | None = None
    started: float | None = None
    ended: float | None = None

    def __call__(self) -> Any:
        """JSON in and out as Lambda's runtime does: each handler gets its own copy of the
        event, and a response that JSON cannot carry fails the invocation (Lambda's
        Runtime.MarshalError)."""
        self.started = time.monotonic()
        self.context.deadline_monotonic = self.started + self.timeout_seconds
        self.on_start()
        try:
            event = json.loads(self.payload)
            response = contextvars.Context().run(self._handle, event)
            return json.loads(json.dumps(response))
        finally:
            self.ended = time.monotonic()

    def _handle(self, event: Any) -> Any:
        if self.around is None:
            return self.handler(event, self.context)
        with self.around():
            return self.handler(event, self.context)

    def duration_ms(self) -> float:
        """How long the handler ran (so far, when it still runs)."""
        if self.started is None:
            return 0.0
        return ((self.ended or time.monotonic()) - self.started) * 1000


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended: a response, an exception, or a timeout."""

    request_id: str
    duration_ms: float
    response: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.timed_out


class Functions:
    """The functions of one stack (or cell), their handlers loaded once, invoked on a
    worker pool."""

    def __init__(
        self,
        handlers: Iterable[tuple[str, str]],
        *,
        region: str,
        account_id: str,
        workers: int = DEFAULT_WORKERS,
        timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        pool: ThreadPoolExecutor | None = None,
        around: Around | None = None,
        name_prefix: str = "",
    ) -> None:
        """`handlers` pairs each function name with its dotted handler path.

        `pool`: a pool shared with other Functions (its owner shuts it down), instead of
        one of `workers` threads of our own. `around`: what each invocation runs inside.
        `name_prefix`: prepended to a function's name to make its deployed name (Invoke's
        FunctionName, the context's function_name), e.g. "messenger-local-c0-".
        """
        self._paths = dict(handlers)
        self._handlers: dict[str, LambdaHandler] = {}
        self._region = region
        self._account_id = account_id
        self._timeout = timeout_seconds
        self._owns_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._around = around
        self.name_prefix = name_prefix

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self._pool

    def has(self, function_name: str) -> bool:
        return function_name in self._paths

    def names(self) -> list[str]:
        return list(self._paths)

    def deployed_name(self, function_name: str) -> str:
        return self.name_prefix + function_name

    def load(self) -> None:
        """Import every handler now, so a broken import fails the start, not a request."""
        for name, path in self._paths.items():
            self._handlers[name] = load_handler(path)

    async def invoke(self, function_name: str, event: dict[str, Any]) -> Outcome:
        """Run one function on the pool; never raises for what the handler does."""
        context = LambdaContext.for_invocation(
            self.deployed_name(function_name),
            region=self._region,
            account_id=self._account_id,
            timeout_seconds=self._timeout,
        )
        request_id = context.aws_request_id
        loop = asyncio.get_running_loop()
        running = asyncio.Event()

        def on_start() -> None:
            # A handler left running past its timeout may start after the loop closed.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(running.set)

        run = _Run(
            self._handlers[function_name],
            json.dumps(event),
            context,
            self._timeout,
            on_start,
            self._around,
        )
        future = loop.run_in_executor(self._pool, run)
        # Queued for a worker: no clock runs yet.
        started = asyncio.ensure_future(running.wait())
        await asyncio.wait({future, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        left = self._timeout - (time.monotonic() - (run.started or time.monotonic()))
        try:
            # shield: a timed-out handler keeps its thread (Lambda would freeze it);
            # we only stop waiting for it.
            response = await asyncio.wait_for(asyncio.shield(future), max(left, 0.0))
        except TimeoutError:
            return Outcome(request_id, run.duration_ms(), timed_out=True)
        except Exception as error:  # the handler's own exception, reported like Lambda
            return Outcome(request_id, run.duration_ms(), error=error)
        return Outcome(request_id, run.duration_ms(), response=response)

    def shutdown(self) -> None:
        """Wait for running handlers, then release the worker threads (of our own pool)."""
        if self._owns_pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
