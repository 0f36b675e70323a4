"""`messenger local` serves the web app on its own port, telling the page where to connect."""

from __future__ import annotations

import aiohttp
import pytest

from messenger_local import LocalStack
from messenger_local.webapp import WEB_DIST

pytestmark = pytest.mark.e2e


def base(stack: LocalStack) -> str:
    return f"http://{stack.host}:{stack.port}"


async def test_given_the_stack_then_the_page_and_its_files_are_served_with_a_strict_csp(
    web_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        # When the browser asks for the page
        async with http.get(f"{base(web_stack)}/") as page:
            body = await page.text()
            headers = page.headers

        # Then it is the app, and it may connect to this server's WebSocket and nothing else
        assert page.status == 200
        assert page.content_type == "text/html"
        assert '<script type="module" src="app.js">' in body
        csp = dict(
            directive.strip().split(" ", 1)
            for directive in headers["Content-Security-Policy"].split(";")
        )
        assert csp["connect-src"] == f"ws://{web_stack.host}:{web_stack.port}"
        assert csp["script-src"] == "'self'"
        assert csp["default-src"] == "'none'"
        assert csp["frame-ancestors"] == "'none'"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"

        # And each file the build wrote is there, with its type
        for name, content_type in [("app.js", "text/javascript"), ("app.css", "text/css")]:
            async with http.get(f"{base(web_stack)}/{name}") as response:
                assert response.status == 200
                assert response.content_type == content_type
                assert await response.read() == (WEB_DIST / name).read_bytes()


async def test_given_a_page_from_this_origin_then_its_config_names_its_websocket(
    web_stack: LocalStack,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base(web_stack)}/config.json") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"webSocketUrl": web_stack.ws_url}
    async with aiohttp.ClientSession() as http, http.get(f"{base(web_stack)}/config.js") as module:
        assert module.content_type == "text/javascript"
        assert await module.text() == f'export default {{"webSocketUrl": "{web_stack.ws_url}"}};\n'

    # Asked by another name of the same server, it answers with that name
    headers = {"Host": f"localhost:{web_stack.port}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base(web_stack)}/config.json", headers=headers) as response,
    ):
        assert (await response.json())["webSocketUrl"] == f"ws://localhost:{web_stack.port}/local"


@pytest.mark.parametrize(
    "path",
    [
        "/pyproject.toml",
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/web/dist/app.js",
        "/app.js/x",
    ],
)
async def test_given_a_path_that_is_not_one_of_the_apps_files_then_nothing_is_served(
    web_stack: LocalStack, path: str
) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{base(web_stack)}{path}") as response:
        assert response.status == 404


async def test_given_the_web_app_then_the_stage_routes_still_answer_as_before(
    web_stack: LocalStack,
) -> None:
    # The WebSocket route keeps its answer to a plain GET (no upgrade), not the page
    async with aiohttp.ClientSession() as http, http.get(web_stack.http_url) as response:
        assert response.status != 200
        assert "<html" not in await response.text()
