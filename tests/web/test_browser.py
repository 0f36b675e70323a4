"""The web app in a real Chromium against the local stack: what the issue asks, as a person.

Each test starts the stack in-process (it serves the app at / on its own port) and drives
headless Chromium by the accessible names the page promises. The CLI peer is the real
`messenger` command in a subprocess. Screenshots at phone and desktop size land in docs/.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from messenger_local import EmbeddedAws, LocalStack
from tests.support.waiting import until
from tests.web.pages import PHONE, Cli, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def app_url(stack: LocalStack) -> str:
    return f"http://{stack.host}:{stack.port}/"


@pytest.fixture
def cli(tmp_path: Path, web_stack: LocalStack) -> Cli:
    home = tmp_path / "messenger-home"
    home.mkdir(mode=0o700)
    return Cli(home, web_stack.ws_url)


async def test_a_browser_user_and_a_cli_user_chat_both_ways(
    browser: Browser, web_stack: LocalStack, cli: Cli
) -> None:
    # Given bob, registered from a terminal, and alice on her first visit in a browser
    await cli.ok("--profile", "bob", "init")
    await cli.ok("--profile", "bob", "read")
    alice = await WebUser.open(browser, app_url(web_stack))
    await alice.start("alice")

    # When she opens a chat with bob
    await alice.open_chat("bob")

    # Then she sees his safety number (the one bob's own CLI shows) and when he was last seen
    bobs_number = re.search(r"(\d{5}( \d{5}){5})", await cli.ok("--profile", "bob", "fingerprint"))
    assert bobs_number is not None
    await expect(alice.page.get_by_label("Safety number")).to_have_text(bobs_number.group(1))
    await alice.expect_presence("last seen")

    # When she sends (Enter) and bob reads in his terminal, marking it seen
    await alice.type_and_send("hello bob, from the browser")
    await expect(alice.mark_of("hello bob, from the browser", "sent")).to_be_visible()
    read = await cli.ok("--profile", "bob", "read", "--seen")

    # Then bob got it, and her mark goes to seen
    assert "alice: hello bob, from the browser" in read
    await expect(alice.mark_of("hello bob, from the browser", "seen")).to_be_visible()

    # When bob comes online with a watching terminal, she sees him online
    watcher = await cli.start("--profile", "bob", "read", "--watch", "--seen")
    try:
        await alice.expect_presence("online")

        # And his message appears in her chat, and he learns she has seen it
        await cli.ok("--profile", "bob", "send", "alice", "hi alice, from the terminal")
        await expect(alice.message("hi alice, from the terminal")).to_be_visible()
        await until_history(cli, "bob", "alice", "hi alice, from the terminal  ✓✓ seen")

        # And what she sends now is printed at once in his terminal, and delivered
        await alice.type_and_send("you are online now", enter=False)
        assert watcher.stdout is not None
        line = await asyncio.wait_for(watcher.stdout.readline(), 20)
        assert line.decode().rstrip().endswith("alice: you are online now")
        await expect(alice.mark_of("you are online now", "delivered")).to_be_visible()
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 20) == 0

    # When his terminal closes (marking what he read seen), she sees both
    await expect(alice.mark_of("you are online now", "seen")).to_be_visible()
    await alice.expect_presence("last seen")
    await alice.close()


async def until_history(cli: Cli, profile: str, peer: str, line: str) -> None:
    for _ in range(100):
        if line in await cli.ok("--profile", profile, "history", peer):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{profile}'s history with {peer} never showed {line!r}")
