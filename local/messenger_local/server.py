"""One aiohttp server, one port, both halves of the API, as on AWS:

GET    /{stage}                            WebSocket upgrade
POST   /{stage}/@connections/{id}          send a frame
GET    /{stage}/@connections/{id}          connection info
DELETE /{stage}/@connections/{id}          close it

and, for the functions that invoke one another, Lambda's own Invoke API:

POST   /2015-03-31/functions/{name}/invocations
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from messenger_local import lambda_api, management
from messenger_local.gateway import Gateway
from messenger_local.websocket import serve_websocket

# @connections bodies are read whole; anything past the 128 KB limit gets a 413 from
# us rather than aiohttp's own, so allow a margin above it.
_MAX_REQUEST_BYTES = 1024 * 1024

Handler = Callable[[Gateway, web.Request], Awaitable[web.StreamResponse]]


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application serving one stage."""
    app = web.Application(client_max_size=_MAX_REQUEST_BYTES)

    def bound(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return functools.partial(handler, gateway)

    stage = gateway.api.stage
    connection_path = f"/{stage}/@connections/{{connection_id}}"
    app.router.add_get(f"/{stage}", bound(serve_websocket))
    app.router.add_post(connection_path, bound(management.post_to_connection))
    app.router.add_get(connection_path, bound(management.get_connection))
    app.router.add_delete(connection_path, bound(management.delete_connection))
    app.router.add_post(lambda_api.INVOKE_PATH, bound(lambda_api.invoke))
    return app


class Server:
    """Runs the application on host:port (0 picks a free port)."""

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        self._gateway = gateway
        self._host = host
        self._port = port
        # Connections are closed (and drained) before the runner stops, so it has
        # nothing left to wait for.
        self._runner = web.AppRunner(build_app(gateway), access_log=None, shutdown_timeout=1.0)

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        """Listen; `port` is the bound port afterwards."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        if self._port == 0:
            self._port = int(self._runner.addresses[0][1])
        self._gateway.port = self._port

    async def stop(self) -> None:
        """Stop listening and close what is left."""
        await self._runner.cleanup()
