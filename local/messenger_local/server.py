"""One aiohttp server, one port, both halves of the API, as on AWS:

GET    /{stage}                            WebSocket upgrade
POST   /{stage}/@connections/{id}          send a frame
GET    /{stage}/@connections/{id}          connection info
DELETE /{stage}/@connections/{id}          close it
GET    /, /config.json, /app.js ...        the web app (messenger_local.webapp)

and, for the functions that invoke one another, Lambda's own Invoke API:

POST   /2015-03-31/functions/{name}/invocations
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from messenger_local import lambda_api, management
from messenger_local.gateway import Gateway
from messenger_local.webapp import add_web_routes
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
    add_web_routes(app, stage)
    app.router.add_post(lambda_api.INVOKE_PATH, bound(lambda_api.invoke))
    return app


class Server:
    """Runs the application on host:port (0 picks a free port).

    Two steps, so that the stack can be ready before anyone connects: `bind` takes the
    port (its number is known from then on) without listening, so a client meets a
    refused connection, not a handshake the functions cannot answer yet; `listen`
    opens it.
    """

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        self._gateway = gateway
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        # Connections are closed (and drained) before the runner stops, so it has
        # nothing left to wait for.
        self._runner = web.AppRunner(build_app(gateway), access_log=None, shutdown_timeout=1.0)

    @property
    def port(self) -> int:
        return self._port

    async def bind(self) -> None:
        """Take the port; `port` is the bound port afterwards. Nobody can connect yet."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        bound = socket.socket(family, socket.SOCK_STREAM)
        try:
            bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            bound.bind((self._host, self._port))
        except OSError as error:
            bound.close()
            raise OSError(
                error.errno, f"cannot serve on {self._host}:{self._port}: {error.strerror}"
            ) from error
        bound.setblocking(False)
        self._socket = bound
        self._port = int(bound.getsockname()[1])
        self._gateway.port = self._port

    async def listen(self) -> None:
        """Accept connections from now on."""
        if self._socket is None:
            raise RuntimeError("bind() first")
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def stop(self) -> None:
        """Stop listening and close what is left."""
        await self._runner.cleanup()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
