"""The web app (web/, built into web/dist by `./dev install`), served on the stack's port.

GET /               the app's page
GET /config.js      where the page connects, as a module the page imports: this stage's
                    WebSocket URL on the origin the page came from (the request's Host),
                    so a page opened as http://127.0.0.1:8080/ connects to
                    ws://127.0.0.1:8080/local; or, with cells, the directory's URL
                    (`directoryUrl`, docs/protocol.md §6) and the page finds its home cell
GET /config.json    the same, as JSON, for other clients
GET /<file>         the app's other files (only those the build wrote, by exact name)

Every answer carries the security headers the CloudFront distribution sets on AWS
(infra/web.py): the page may connect to its WebSocket and to nothing else; with cells,
to the directory's origin and every cell's WebSocket origin (locally, the cells are
served on the page's own port).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from aiohttp import web

WEB = Path(__file__).resolve().parents[2] / "web"
WEB_DIST = WEB / "dist"
# One list of security headers for here and for CloudFront (infra/web.py).
SECURITY_HEADERS = WEB / "app" / "security-headers.json"
CONFIG_MODULE = "config.js"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain",
}


def security_headers(connect_origins: Iterable[str]) -> dict[str, str]:
    """The headers of every answer: the page loads only its own files and connects only
    to `connect_origins` (web/app/security-headers.json)."""
    headers: dict[str, str] = json.loads(SECURITY_HEADERS.read_text(encoding="utf-8"))
    headers.pop("comment")
    csp = headers["Content-Security-Policy"]
    headers["Content-Security-Policy"] = csp.replace("{connect}", " ".join(connect_origins))
    return headers


def config_module(config: dict[str, str]) -> str:
    """config.js: the page's configuration as an ES module."""
    return f"export default {json.dumps(config, sort_keys=True)};\n"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def add_web_routes(
    app: web.Application,
    stage: str,
    root: Path = WEB_DIST,
    *,
    directory: str | None = None,
    directory_key: str | None = None,
    cell_origins: Sequence[str] = (),
) -> None:
    """Serve the built app at / on `app` (after the stage's own routes).

    `directory`: the page finds its home cell in the directory at this URL (a path is on
    the page's own origin, as `messenger local --cells` serves /directory.json) instead
    of connecting to this stage, and refuses one that `directory_key` (base64url) did not
    sign; `cell_origins`: the cells' WebSocket origins when they are not on the page's own
    port.
    """

    def own_websocket_origin(request: web.Request) -> str:
        return f"{'wss' if request.scheme == 'https' else 'ws'}://{request.host}"

    def page_config(request: web.Request) -> dict[str, str]:
        if directory is not None:
            config = {"directoryUrl": urljoin(f"{request.scheme}://{request.host}/", directory)}
            if directory_key is not None:
                config["directoryKey"] = directory_key
            return config
        return {"webSocketUrl": f"{own_websocket_origin(request)}/{stage}"}

    def connect_origins(request: web.Request) -> list[str]:
        origins = [own_websocket_origin(request), *cell_origins]
        config = page_config(request)
        origins += [
            _origin(config[name]) for name in ("directoryUrl", "webSocketUrl") if name in config
        ]
        return list(dict.fromkeys(origins))

    def answer(request: web.Request, body: bytes, content_type: str) -> web.Response:
        response = web.Response(body=body, content_type=content_type)
        response.headers.update(security_headers(connect_origins(request)))
        # Always asked again: a rebuilt app or a changed port shows at the next load.
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def config_js(request: web.Request) -> web.Response:
        return answer(request, config_module(page_config(request)).encode(), "text/javascript")

    async def config_json(request: web.Request) -> web.Response:
        return answer(request, json.dumps(page_config(request)).encode(), "application/json")

    def file(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            path = root / name
            if not path.is_file():
                raise web.HTTPServiceUnavailable(
                    text="the web app is not built: run ./dev install (it runs node web/build.mjs)"
                )
            return answer(request, path.read_bytes(), _TYPES.get(path.suffix, "text/plain"))

        return serve

    app.router.add_get("/", file("index.html"))
    app.router.add_get(f"/{CONFIG_MODULE}", config_js)
    app.router.add_get("/config.json", config_json)
    # Only the files the build wrote, each by its exact name: no path ever reaches the disk.
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_file() and path.suffix in _TYPES and path.name != CONFIG_MODULE:
            app.router.add_get(f"/{path.name}", file(path.name))
