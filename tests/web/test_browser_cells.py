"""The web app in cells mode (docs/protocol.md §6): config.js names a directory, not a server.

The page and the directory are served over real HTTP on loopback by this test (the web
app's routes from messenger_local.webapp, as `messenger local --cells` serves them),
and the directory sends every user to the local stack. The CLI peer finds its home
through the same directory (`--directory`). The page is given the directory's key in its
config, verifies the directory with it and keeps it in IndexedDB (a reload connects from
the kept one, and a spoof served meanwhile changes nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from nacl.signing import SigningKey
from playwright.async_api import Browser, expect

from messenger_local import LocalStack
from messenger_local.webapp import add_web_routes
from messenger_protocol.cells import Directory, ShardMap
from messenger_protocol.encoding import b64url_encode
from tests.web.pages import Cli, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


DIRECTORY_KEY = SigningKey.generate()
SERVED: dict[str, dict[str, Any]] = {}


@pytest.fixture
async def cells_site(web_stack: LocalStack) -> AsyncIterator[str]:
    """The web app and /directory.json on a port of their own; the app's URL."""
    cells = ShardMap.even(["c0", "c1"], 4096)
    # Signed, as a deployment's: the page gets its key in config.js, the CLI user reads it
    # at /directory.key (loopback)
    key = DIRECTORY_KEY
    urls = dict.fromkeys(cells.cells(), web_stack.ws_url)
    directory = Directory(1, urls, cells, dict.fromkeys(urls, "local#0"))
    SERVED["directory"] = directory.sign(key).to_wire()
    # What an attacker who serves the directory once would: a far higher version, every
    # cell elsewhere, signed by a key of its own
    spoof = Directory(10**15, dict.fromkeys(urls, "ws://127.0.0.1:9/fake"), cells, directory.epochs)
    SERVED["spoof"] = spoof.sign(SigningKey.generate()).to_wire()

    async def serve_directory(_request: web.Request) -> web.Response:
        return web.json_response(SERVED["directory"])

    async def serve_key(_request: web.Request) -> web.Response:
        return web.Response(text=b64url_encode(bytes(key.verify_key)))

    app = web.Application()
    app.router.add_get("/directory.json", serve_directory)
    app.router.add_get("/directory.key", serve_key)
    stack_origin = f"ws://{web_stack.host}:{web_stack.port}"
    add_web_routes(
        app,
        web_stack.stage,
        directory="/directory.json",
        directory_key=b64url_encode(bytes(key.verify_key)),
        cell_origins=[stack_origin],
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def test_a_browser_user_finds_her_home_cell_in_the_directory_and_chats_with_a_cli_user(
    browser: Browser, web_stack: LocalStack, cells_site: str, tmp_path: Path
) -> None:
    # Given the app configured with a directory, and bob, who found his home through it
    config = await (await browser.new_context()).request.get(f"{cells_site}config.json")
    assert await config.json() == {
        "directoryUrl": f"{cells_site}directory.json",
        "directoryKey": b64url_encode(bytes(DIRECTORY_KEY.verify_key)),
    }
    home = tmp_path / "messenger-home"
    home.mkdir(mode=0o700)
    cli = Cli(home, "ws://127.0.0.1:9/nowhere")  # never used: --directory beats it
    where = ("--directory", f"{cells_site}directory.json")
    await cli.ok("--profile", "bob", *where, "init")
    await cli.ok("--profile", "bob", *where, "read")

    # When alice starts in her browser and writes to bob
    alice = await WebUser.open(browser, cells_site)
    await alice.start("alice")
    await alice.open_chat("bob")
    await alice.type_and_send("hello bob, through the directory")
    await expect(alice.mark_of("hello bob, through the directory", "sent")).to_be_visible()

    # Then bob reads it, and his answer reaches her
    read = await cli.ok("--profile", "bob", *where, "read")
    assert "alice: hello bob, through the directory" in read
    await cli.ok("--profile", "bob", *where, "send", "alice", "hi alice, same here")
    await expect(alice.message("hi alice, same here")).to_be_visible()

    # And her page connected to the cell the directory named, and nowhere else
    assert alice.traffic.sockets
    assert all(url.startswith(f"{web_stack.ws_url}?userId=alice&") for url in alice.traffic.sockets)
    directory_reads = [r for r in alice.traffic.requests if r["url"].endswith("/directory.json")]
    assert len(directory_reads) == 1, "read once to connect, never polled"

    # When the directory is spoofed, and she reloads the page
    SERVED["directory"] = SERVED["spoof"]
    sockets = len(alice.traffic.sockets)
    await alice.page.reload()
    await cli.ok("--profile", "bob", *where, "send", "alice", "after the reload")

    # Then her page connects home from the directory it kept (IndexedDB), without reading
    # the spoof, and still chats
    await expect(alice.message("after the reload")).to_be_visible()
    assert alice.traffic.sockets[sockets:]
    assert all(url.startswith(f"{web_stack.ws_url}?") for url in alice.traffic.sockets[sockets:])
    directory_reads = [r for r in alice.traffic.requests if r["url"].endswith("/directory.json")]
    assert len(directory_reads) == 1, "the kept directory needs no read"
    await alice.close()
