"""One aiohttp server, one port, both halves of the API, as on AWS:

GET    /{stage}                            WebSocket upgrade
POST   /{stage}/@connections/{id}          send a frame
GET    /{stage}/@connections/{id}          connection info
DELETE /{stage}/@connections/{id}          close it
GET    /, /config.json, /app.js ...        the web app (messenger_local.webapp)

With cells, each cell is a stage of its own (/c0, /c1, ...: those four routes for
each), and the directory (docs/protocol.md §6) is served too:

GET    /directory.json          the newest version (max-age 5 s)
GET    /directory/{N}.json      version N, forever (immutable)
GET    /directory.key           the directory's public key, base64url text

and with a standby for each cell, the emulated region loss (messenger_local.standby):

POST   /_local/failover/{cell}[?keepPrimary=true]

Control endpoints (/_local/...), @connections and the Invoke API refuse what a web page
could forge (messenger_local.browser_guard): 403.

and, for the functions that invoke one another, Lambda's own Invoke API:

POST   /2015-03-31/functions/{name}/invocations
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiohttp import web

from messenger_directory.signer import DirectorySigner
from messenger_directory.store import CACHE_CONTROL, COPY_CACHE_CONTROL
from messenger_local import lambda_api, management
from messenger_local.browser_guard import guard_middleware
from messenger_local.gateway import Gateway, json_response
from messenger_local.standby import FAILOVER_PATH, Failover
from messenger_local.webapp import add_web_routes
from messenger_local.websocket import serve_websocket
from messenger_protocol.cells import (
    DIRECTORY_COPIES,
    DIRECTORY_KEY_NAME,
    DIRECTORY_NAME,
    Directory,
)

# @connections bodies are read whole; anything past the 128 KB limit gets a 413 from
# us rather than aiohttp's own, so allow a margin above it.
_MAX_REQUEST_BYTES = 1024 * 1024

Handler = Callable[[Gateway, web.Request], Awaitable[web.StreamResponse]]
# Adds the routes of one part of the site (the web app, the directory, failovers).
AddRoutes = Callable[[web.Application], None]
DIRECTORY_PATH = f"/{DIRECTORY_NAME}"
DIRECTORY_COPIES_PATH = f"/{DIRECTORY_COPIES}"
DIRECTORY_KEY_PATH = f"/{DIRECTORY_KEY_NAME}"


class PublishedDirectory(Protocol):
    """What the site serves of the directory (messenger_local.directory.LocalDirectory)."""

    @property
    def current(self) -> Directory: ...

    @property
    def signer(self) -> DirectorySigner: ...

    def copy(self, version: int) -> bytes | None: ...


# Fails a cell over to its standby (KeyError: no such cell with a standby).
# (cell, keep_primary): POST /_local/failover/CELL[?keepPrimary=true].
FailOver = Callable[..., Awaitable[Failover]]


def add_stage_routes(app: web.Application, gateway: Gateway) -> None:
    """The WebSocket and @connections routes of one stage."""

    def bound(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return functools.partial(handler, gateway)

    stage = gateway.api.stage
    connection_path = f"/{stage}/@connections/{{connection_id}}"
    app.router.add_get(f"/{stage}", bound(serve_websocket))
    app.router.add_post(connection_path, bound(management.post_to_connection))
    app.router.add_get(connection_path, bound(management.get_connection))
    app.router.add_delete(connection_path, bound(management.delete_connection))


def build_app(
    gateways: Sequence[Gateway], resolve: lambda_api.Resolve, site: Sequence[AddRoutes]
) -> web.Application:
    """The aiohttp application: each stage, Lambda's Invoke API, and the `site`'s parts
    (`one_stage_site`, or `directory_site` and `failover_site` for a stack of cells)."""
    # What a web page could forge (control endpoints, unsigned Invokes) is refused first.
    app = web.Application(client_max_size=_MAX_REQUEST_BYTES, middlewares=[guard_middleware])
    for gateway in gateways:
        add_stage_routes(app, gateway)
    app.router.add_post(lambda_api.INVOKE_PATH, functools.partial(lambda_api.invoke, resolve))
    for add_routes in site:
        add_routes(app)
    return app


def one_stage_site(stage: str) -> AddRoutes:
    """A stack served as one stage: the web app connects to it."""
    return functools.partial(add_web_routes, stage=stage)


def directory_site(directory: PublishedDirectory, first_stage: str) -> AddRoutes:
    """A stack of cells: the directory, its numbered copies and its public key, and the
    web app connecting through it."""

    async def serve_directory(request: web.Request) -> web.Response:
        # As CloudFront serves it (infra): clients see a change within 5 s.
        document = directory.current.to_wire()
        return json_response(200, document, headers={"Cache-Control": CACHE_CONTROL})

    async def serve_copy(request: web.Request) -> web.Response:
        text = request.match_info["version"]
        body = await asyncio.to_thread(directory.copy, int(text)) if text.isdigit() else None
        if body is None:
            return web.Response(status=404, text="no such version\n")
        # A version names one document, forever: cacheable without limit.
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"Cache-Control": COPY_CACHE_CONTROL},
        )

    async def serve_key(request: web.Request) -> web.Response:
        return web.Response(text=directory.signer.public_key() + "\n")

    def add_routes(app: web.Application) -> None:
        app.router.add_get(DIRECTORY_PATH, serve_directory)
        app.router.add_get(f"{DIRECTORY_COPIES_PATH}/{{version}}.json", serve_copy)
        app.router.add_get(DIRECTORY_KEY_PATH, serve_key)
        add_web_routes(
            app,
            first_stage,
            directory=DIRECTORY_PATH,
            directory_key=directory.signer.public_key(),
        )

    return add_routes


def failover_site(fail_over: FailOver) -> AddRoutes:
    """A stack with standbys: POST /_local/failover/CELL (`?keepPrimary=true`: partial)."""

    async def serve_failover(request: web.Request) -> web.Response:
        cell = request.match_info["cell"]
        try:
            keep_primary = request.query.get("keepPrimary", "").lower() in ("1", "true")
            failover = await fail_over(cell, keep_primary=keep_primary)
        except KeyError:
            return json_response(404, {"message": f"no cell {cell!r} with a standby"})
        return json_response(200, failover.to_wire())

    def add_routes(app: web.Application) -> None:
        app.router.add_post(FAILOVER_PATH, serve_failover)

    return add_routes


class Server:
    """Runs the application on host:port (0 picks a free port).

    Two steps, so that the stack can be ready before anyone connects: `bind` takes the
    port (its number is known from then on, and the stages are made with it) without
    listening, so a client meets a refused connection, not a handshake the functions
    cannot answer yet; `listen` serves the application from then on.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None

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

    async def listen(self, app: web.Application) -> None:
        """Serve `app` (`build_app`) and accept connections from now on."""
        if self._socket is None:
            raise RuntimeError("bind() first")
        # Connections are closed (and drained) before the runner stops, so it has
        # nothing left to wait for.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def stop(self) -> None:
        """Stop listening and close what is left."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
