"""The web app in a real Chromium (Playwright for Python), against the local stack in-process.

Playwright's own browser download cannot be reached here, so the tests drive a system
Chromium: `$CHROMIUM`, else the first of `chromium`, `chromium-browser`, `google-chrome` on
PATH (`./dev test` installs Debian's `chromium` where it can). Without one the browser
tests fail, saying so: they never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from messenger_local import EmbeddedAws, LocalStack
from tests.support.stack_fixtures import shared_aws

__all__ = ["shared_aws"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# What Debian's chromium needs to run headless as root in a container, and to stay off
# the network (no updates, no sync, no QUIC probes).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """The Chromium to drive; fails the test (never skips it) when there is none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        if not shutil.which(configured):
            pytest.fail(f"$CHROMIUM={configured} is not an executable")
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no Chromium for the browser tests: set $CHROMIUM to one, or install one "
        "(`./dev test` installs Debian's `chromium` when run as root on Debian or Ubuntu)"
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium; each `new_context()` is a fresh profile (its own IndexedDB)."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def web_stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    """The local stack, serving the web app at / on its port."""
    async with LocalStack(aws=shared_aws) as running:
        yield running
