"""The web app (web/, built into web/dist by `./dev install`), served on the stack's port.

GET /               the app's page
GET /config.js      where the page connects, as a module the page imports: this stage's
                    WebSocket URL on the origin the page came from (the request's Host),
                    so a page opened as http://127.0.0.1:8080/ connects to
                    ws://127.0.0.1:8080/local
GET /config.json    the same, as JSON, for other clients
GET /<file>         the app's other files (only those the build wrote, by exact name)

Every answer carries the security headers the CloudFront distribution sets on AWS
(infra/web.py): the page may connect to its WebSocket and to nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
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


def content_security_policy(connect_origins: Iterable[str]) -> str:
    """The page loads only its own files and connects only to `connect_origins`."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "manifest-src 'self'",
            f"connect-src {' '.join(connect_origins)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(connect_origins: Iterable[str]) -> dict[str, str]:
    """The headers of every answer (infra/web.py sets the same ones on CloudFront)."""
    return {
        "Content-Security-Policy": content_security_policy(connect_origins),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def config_module(config: dict[str, str]) -> str:
    """config.js: the page's configuration as an ES module."""
    return f"export default {json.dumps(config, sort_keys=True)};\n"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def add_web_routes(app: web.Application, stage: str, root: Path = WEB_DIST) -> None:
    """Serve the built app at / on `app` (after the stage's own routes)."""

    def page_config(request: web.Request) -> dict[str, str]:
        scheme = "wss" if request.scheme == "https" else "ws"
        return {"webSocketUrl": f"{scheme}://{request.host}/{stage}"}

    def answer(request: web.Request, body: bytes, content_type: str) -> web.Response:
        response = web.Response(body=body, content_type=content_type)
        origins = [_origin(url) for url in page_config(request).values()]
        response.headers.update(security_headers(origins))
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
