"""Client SDK and CLI tests: profiles in a temporary home, clients on the local stack.

The local stack fixtures (`shared_aws`, `stack`) come from tests/support, shared with
the emulator's own end-to-end tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionPolicy
from messenger_client.errors import ProfileNotFound
from messenger_client.keystore import Profile
from messenger_local import LocalStack
from messenger_protocol.names import PresenceVisibility
from tests.support.stack_fixtures import connect, shared_aws, stack

__all__ = ["connect", "shared_aws", "stack"]

# Real timings, only shorter: reconnects and resends happen within a test's patience.
FAST = ClientSettings(
    connection=ConnectionPolicy(open_timeout=5.0, backoff_base=0.05, backoff_cap=0.5),
    request_timeout=5.0,
    resend_base=1.0,
    resend_cap=2.0,
    # A newer directory a `dv` names is read at once (a deployment spreads it over 60 s).
    directory_jitter=0.0,
)

# A user who shows their presence to everyone (the SDK's default is their contacts only).
VISIBLE = dataclasses.replace(FAST, presence_visibility=PresenceVisibility.EVERYONE)

MakeClient = Callable[..., Awaitable[MessengerClient]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Where this test's profiles live (what MESSENGER_HOME points to)."""
    directory = tmp_path / "messenger-home"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def profile(home: Path) -> Callable[[str], Profile]:
    """`profile("alice")`: alice's profile, created on first use."""

    def open_or_create(name: str) -> Profile:
        try:
            return Profile.load(name, home)
        except ProfileNotFound:
            return Profile.create(name, home=home)

    return open_or_create


class Clients:
    """Starts SDK clients for a test and closes them all at its end."""

    def __init__(self, profile: Callable[[str], Profile]) -> None:
        self._profile = profile
        self.started: list[MessengerClient] = []

    async def open(
        self,
        name: str,
        url: str | None,
        *,
        directory_url: str | None = None,
        settings: ClientSettings = FAST,
        wait: bool = True,
    ) -> MessengerClient:
        """`name`'s client on `url` (or on its home cell from `directory_url`), started;
        online and synced unless `wait` is False."""
        messenger = MessengerClient(
            url, self._profile(name), directory_url=directory_url, settings=settings
        )
        messenger.start()
        self.started.append(messenger)
        if wait:
            await messenger.wait_synced()
        return messenger

    async def close_all(self) -> None:
        for messenger in self.started:
            await messenger.close()
        self.started.clear()


@pytest.fixture
async def clients(profile: Callable[[str], Profile]) -> AsyncIterator[Clients]:
    """Clients on any server (tests that start their own LocalStack use this)."""
    opened = Clients(profile)
    yield opened
    await opened.close_all()


@pytest.fixture
def client(stack: LocalStack, clients: Clients) -> MakeClient:
    """`await client("alice")`: alice's client on the test's stack, online and synced."""

    async def make(
        name: str, *, url: str | None = None, settings: ClientSettings = FAST, wait: bool = True
    ) -> MessengerClient:
        return await clients.open(name, url or stack.ws_url, settings=settings, wait=wait)

    return make
