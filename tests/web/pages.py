"""Driving the web app as a person does, by the accessible names the issue promises."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    WebSocket,
    expect,
)

from tests.support.cli import MESSENGER, environment

DOCS = Path(__file__).resolve().parents[2] / "docs"
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=800)
# Generous: a CI machine shared by several engineers is slow now and then.
WAIT_MS = 20_000

expect.set_options(timeout=WAIT_MS)


@dataclass
class Traffic:
    """Everything a page sent: HTTP requests, WebSocket connects and frames."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


class WebUser:
    """One person in one browser profile (context), using the app at `url`."""

    def __init__(self, context: BrowserContext, page: Page, url: str) -> None:
        self.context = context
        self.page = page
        self.url = url
        self.traffic = Traffic()
        page.on("request", self._record_request)
        page.on("websocket", self._record_socket)

    @classmethod
    async def open(cls, browser: Browser, url: str, viewport: ViewportSize = DESKTOP) -> WebUser:
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        user = cls(context, page, url)
        await page.goto(url)
        return user

    def _record_request(self, request: Any) -> None:
        self.traffic.requests.append(
            {"url": request.url, "headers": request.headers, "body": request.post_data or ""}
        )

    def _record_socket(self, socket: WebSocket) -> None:
        self.traffic.sockets.append(socket.url)
        socket.on("framesent", lambda payload: self.traffic.frames.append(str(payload)))

    # --- what a person does ---------------------------------------------------------

    async def start(self, user_id: str) -> None:
        """First visit: pick a user id; keys are made and the id registered."""
        await self.page.get_by_label("User id").fill(user_id)
        await self.page.get_by_role("button", name="Start").click()
        await expect(self.page.get_by_label("Chat with")).to_be_visible()

    async def open_chat(self, peer: str) -> None:
        await self.page.get_by_label("Chat with").fill(peer)
        await self.page.get_by_role("button", name="Open").click()
        await expect(self.log).to_be_visible()

    async def type_and_send(self, text: str, *, enter: bool = True) -> None:
        box = self.page.get_by_label("Message")
        await box.fill(text)
        if enter:
            await box.press("Enter")
        else:
            await self.page.get_by_role("button", name="Send").click()

    # --- what a person sees ---------------------------------------------------------

    @property
    def log(self) -> Locator:
        return self.page.get_by_role("log")

    def message(self, text: str) -> Locator:
        return self.log.get_by_role("listitem").filter(has_text=text)

    def mark_of(self, text: str, mark: str) -> Locator:
        """The mark ("sent", "delivered", "seen") on our own message `text`."""
        return self.message(text).get_by_role("img", name=mark, exact=True)

    @property
    def presence(self) -> Locator:
        shown = re.compile(r"^(online|last seen|presence )")
        return self.page.get_by_role("status").filter(has_text=shown)

    async def expect_presence(self, starts: str) -> None:
        await expect(self.page.get_by_role("status", name=re.compile(f"^{starts}"))).to_be_visible()

    async def screenshot(self, name: str) -> Path:
        path = DOCS / name
        await self.page.screenshot(path=str(path))
        return path

    async def close(self) -> None:
        await self.context.close()


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


class Cli:
    """The `messenger` command in a terminal, run without blocking the stack's event loop."""

    def __init__(self, home: Path, server: str) -> None:
        self.home = home
        self.server = server

    async def run(self, *args: str, timeout: float = 30.0) -> Run:
        process = await asyncio.create_subprocess_exec(
            MESSENGER,
            *args,
            env=environment(self.home, self.server),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.code == 0, (args, result)
        return result.out

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            MESSENGER,
            *args,
            env=environment(self.home, self.server),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
