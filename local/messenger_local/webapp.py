"""The web app (web/, built into web/dist by `./dev install`), served on the stack's port.

GET /               the app's page
GET /config.json    where the page connects: this stage's WebSocket URL on the origin the
                    page came from (the request's Host), so a page opened as
                    http://127.0.0.1:8080/ connects to ws://127.0.0.1:8080/local
GET /<file>         the app's other files (only those the build wrote)

Every answer carries the security headers the CloudFront distribution sets on AWS
(infra/web.py), with `connect-src` allowing this server's own WebSocket and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain",
}


def content_security_policy(websocket_origin: str) -> str:
    """The page may load only its own files and connect only to its own server."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "manifest-src 'self'",
            f"connect-src 'self' {websocket_origin}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(websocket_origin: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(websocket_origin),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def _websocket_origin(request: web.Request) -> str:
    scheme = "wss" if request.scheme == "https" else "ws"
    return f"{scheme}://{request.host}"


def add_web_routes(app: web.Application, stage: str, root: Path = WEB_DIST) -> None:
    """Serve the built app at / on `app` (after the stage's own routes)."""

    def answer(request: web.Request, body: bytes, content_type: str) -> web.Response:
        response = web.Response(body=body, content_type=content_type)
        response.headers.update(security_headers(_websocket_origin(request)))
        return response

    async def config(request: web.Request) -> web.Response:
        document = {"webSocketUrl": f"{_websocket_origin(request)}/{stage}", "stage": stage}
        return answer(request, json.dumps(document).encode(), "application/json")

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
    app.router.add_get("/config.json", config)
    # Only the files the build wrote, each by its exact name: no path ever reaches the disk.
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_file() and path.suffix in _TYPES and path.name != "config.json":
            app.router.add_get(f"/{path.name}", file(path.name))
