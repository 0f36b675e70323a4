"""The Lambda side: load the real handlers by their dotted paths and invoke them.

Invocations run concurrently on a worker pool, each with a context object carrying
what Lambda's has (`aws_request_id`, `function_name`, `get_remaining_time_in_millis`,
...). Handlers block (boto3 calls, @connections posts back to this very process),
so they never run on the event loop.

Unlike Lambda, every function shares this one process: module state such as the
cached `messenger.wiring.services()` is shared between routes and invocations.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LambdaHandler = Callable[[dict[str, Any], Any], Any]

# API Gateway gives up on an integration after 29 s, whatever the function's timeout.
INTEGRATION_TIMEOUT_SECONDS = 29.0
MEMORY_MB = 256


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


def _run(handler: LambdaHandler, payload: str, context: LambdaContext) -> Any:
    """One invocation on a worker thread, with JSON in and out as Lambda's runtime does.

    Each handler gets its own copy of the event, and a response that JSON cannot carry
    fails the invocation (Lambda's Runtime.MarshalError).
    """
    response = handler(json.loads(payload), context)
    return json.loads(json.dumps(response))


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
    """The functions of one stack, their handlers loaded once, invoked on a worker pool."""

    def __init__(
        self,
        handlers: Iterable[tuple[str, str]],
        *,
        region: str,
        account_id: str,
        workers: int = 32,
        timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> None:
        """`handlers` pairs each function name with its dotted handler path."""
        self._paths = dict(handlers)
        self._handlers: dict[str, LambdaHandler] = {}
        self._region = region
        self._account_id = account_id
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self._pool

    def has(self, function_name: str) -> bool:
        return function_name in self._paths

    def load(self) -> None:
        """Import every handler now, so a broken import fails the start, not a request."""
        for name, path in self._paths.items():
            self._handlers[name] = load_handler(path)

    async def invoke(self, function_name: str, event: dict[str, Any]) -> Outcome:
        """Run one function on the pool; never raises for what the handler does."""
        handler = self._handlers[function_name]
        context = LambdaContext.for_invocation(
            function_name,
            region=self._region,
            account_id=self._account_id,
            timeout_seconds=self._timeout,
        )
        request_id = context.aws_request_id
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        payload = json.dumps(event)
        future = loop.run_in_executor(self._pool, _run, handler, payload, context)

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        try:
            # shield: a timed-out handler keeps its thread (Lambda would freeze it);
            # we only stop waiting for it.
            response = await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            return Outcome(request_id, elapsed(), timed_out=True)
        except Exception as error:  # the handler's own exception, reported like Lambda
            return Outcome(request_id, elapsed(), error=error)
        return Outcome(request_id, elapsed(), response=response)

    def shutdown(self) -> None:
        """Wait for running handlers, then release the worker threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)
