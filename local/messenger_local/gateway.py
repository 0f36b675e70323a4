"""What both halves of the emulated API share: the WebSocket side and @connections."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from messenger.contract import (
    GATEWAY_ROUTES_BY_KEY,
    INITIAL_STAGE_VARIABLES,
    Authorizer,
    GatewayRoute,
    Route,
)
from messenger_local.connections import ConnectionRegistry
from messenger_local.events import Api
from messenger_local.invocations import Invocation
from messenger_local.lambdas import Functions
from messenger_protocol.limits import IDLE_TIMEOUT_SECONDS, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

MAX_DURATION_SECONDS = 2 * 3600
# On AWS every invocation has a container of its own, so a connection that floods never
# holds up another's frames. Here the functions share one worker pool: each connection
# gets this many invocations at a time, and its further frames wait their turn.
MAX_IN_FLIGHT_PER_CONNECTION = 2


@dataclass(frozen=True)
class Limits:
    """API Gateway's WebSocket quotas; the timeouts are configurable for tests."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_duration: float = MAX_DURATION_SECONDS
    max_in_flight_per_connection: int = MAX_IN_FLIGHT_PER_CONNECTION


class Gateway:
    """One stage of a WebSocket API: routes, functions, open connections, limits."""

    def __init__(
        self,
        api: Api,
        port: int,
        functions: Functions,
        routes: Iterable[Route],
        authorizer: Authorizer | None,
        limits: Limits,
        record: Callable[[Invocation], None],
    ) -> None:
        self.api = api
        self.port = port  # the server's, bound before any stage is made
        self.functions = functions
        self.routes = {route.key: route for route in routes}
        # Routes the stage answers itself, from its variables (a MOCK integration on AWS).
        self.gateway_routes: dict[str, GatewayRoute] = dict(GATEWAY_ROUTES_BY_KEY)
        self.stage_variables: dict[str, str] = dict(INITIAL_STAGE_VARIABLES)
        self.authorizer = authorizer
        self.limits = limits
        self._record = record
        self.connections = ConnectionRegistry()
        # Its region is lost (a failover, messenger_local.standby): it refuses every
        # handshake and Invoke, and answers nothing it was still running.
        self.out_of_service = False
        self._tasks: set[asyncio.Task[None]] = set()

    def answer_itself(self, route: GatewayRoute) -> str:
        """The frame a gateway route answers with, rendered from the stage's variables."""
        return render_template(route.response, self.stage_variables)

    def record(self, invocation: Invocation) -> None:
        """Log what this stage did for a client (or Invoke ran here), naming the stage."""
        self._record(replace(invocation, cell=self.api.stage))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work in the background, tracked so that `drain` can wait for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> bool:
        """Whether background work (an invocation, a $disconnect) is still running."""
        return bool(self._tasks)

    async def settle(self, timeout: float) -> None:
        """Wait until no invocation is in flight; TimeoutError if that takes too long."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def drain(self, timeout: float) -> None:
        """Wait for background work (invocations, $disconnects) to finish."""
        while self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return

    async def close_all(self, code: int, reason: str) -> None:
        """Close every open connection (each fires its $disconnect)."""
        await asyncio.gather(
            *(connection.close(code, reason) for connection in self.connections.all()),
            return_exceptions=True,
        )


def json_response(
    status: int, document: Any, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


_STAGE_VARIABLE = re.compile(r"\$stageVariables\.([A-Za-z0-9_]+)")
_IF_EQUALS = re.compile(
    r'#if\(\$stageVariables\.([A-Za-z0-9_]+) == "([^"]*)"\)(.*?)#\{else\}(.*?)#\{end\}', re.S
)


def render_template(template: str, stage_variables: dict[str, str]) -> str:
    """API Gateway's mapping template, as far as `messenger.contract.GATEWAY_ROUTES` uses
    it: `#if($stageVariables.NAME == "VALUE")A#{else}B#{end}` is A when the stage's NAME is
    VALUE, else B; then `$stageVariables.NAME` is the stage's value (empty when unset, as
    on AWS)."""
    chosen = _IF_EQUALS.sub(
        lambda match: match[3] if stage_variables.get(match[1], "") == match[2] else match[4],
        template,
    )
    return _STAGE_VARIABLE.sub(lambda match: stage_variables.get(match[1], ""), chosen)
