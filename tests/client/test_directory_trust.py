"""The signed directory (docs/protocol.md §6) in the Python SDK: the spoof of issue 22
refused, rollbacks refused, a valid newer version taken, and no fetch but on an event.

Before: a fake directory served once with version 10^15 and a fake cell URL was taken,
saved in the profile, and kept sending the client to the fake. After: it is refused and
the client keeps the home it had, across restarts too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from messenger_client.directory import HomeCell, RefusedDirectory
from messenger_client.errors import NotConnected
from messenger_client.store import HistoryStore
from messenger_protocol.cells import Directory
from tests.client.test_cells import CELLS, DIRECTORY_PUBLIC_KEY, DirectoryServer, directory

pytestmark = pytest.mark.integration

HOME = "ws://127.0.0.1:9/c-real"
FAKE = "ws://127.0.0.1:6666/fake"
SPOOF_VERSION = 10**15


def unsigned(version: int, url: str) -> dict[str, Any]:
    document = directory(version, url, url, "alice")
    del document["sig"]
    return document


def signed_by_another_key(version: int, url: str) -> dict[str, Any]:
    urls = dict.fromkeys(CELLS.cells(), url)
    epochs = dict.fromkeys(urls, "local#0")
    return Directory(version, urls, CELLS, epochs).sign(SigningKey.generate()).to_wire()


def home_cell(url: str, store: HistoryStore, **options: Any) -> HomeCell:
    return HomeCell(
        url, "alice", store, on_home_moved=lambda: None, on_cells_moved=lambda *_: None, **options
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    history = HistoryStore(tmp_path / "history.sqlite3", me="alice")
    yield history
    history.close()


@pytest.mark.parametrize("forge", [unsigned, signed_by_another_key])
async def test_a_spoofed_directory_is_refused_and_the_old_home_kept(store, forge, tmp_path):
    # Given alice's home read from the real directory, version 1
    async with DirectoryServer(
        directory(1, HOME, HOME, "alice"), forge(SPOOF_VERSION, FAKE)
    ) as served:
        home = home_cell(served.url, store)
        assert await home.url(after_failure=False) == HOME

        # When the network serves the spoof (version 10^15, every cell at the fake) and
        # alice reads the directory (her cell refused her, or could not be reached)
        await home.refused()
        url = await home.url(after_failure=True)

        # Then she keeps version 1 and her home
        assert served.gets == 3
        assert url == HOME
        assert home.directory is not None and home.directory.version == 1
        # And so does her next start, the spoof gone from the network or not
        again = home_cell(served.url, store)
        assert again.directory is not None and again.directory.version == 1
        assert await again.url(after_failure=False) == HOME


async def test_a_spoof_met_first_connects_nowhere(store):
    async with DirectoryServer(unsigned(SPOOF_VERSION, FAKE)) as served:
        home = home_cell(served.url, store)
        with pytest.raises(NotConnected, match="not signed by our key"):
            await home.url(after_failure=False)
        assert home.directory is None


async def test_a_lower_version_is_refused_and_a_valid_newer_one_taken(store):
    moved = "ws://127.0.0.1:10/c-moved"
    async with DirectoryServer(
        directory(5, HOME, HOME, "alice"),
        directory(4, FAKE, FAKE, "alice"),  # signed, but rolled back
        directory(6, moved, HOME, "alice"),
    ) as served:
        home = home_cell(served.url, store)
        assert await home.url(after_failure=False) == HOME
        # A rollback (an old copy replayed) is refused: still version 5
        assert await home.url(after_failure=True) == HOME
        assert home.directory is not None and home.directory.version == 5
        # A valid newer version is taken, and kept for the next start
        assert await home.url(after_failure=True) == moved
        assert home_cell(served.url, store).directory.version == 6  # type: ignore[union-attr]


async def test_the_key_is_read_from_a_directory_on_this_machine_and_kept(store):
    async with DirectoryServer(directory(1, HOME, HOME, "alice")) as served:
        await home_cell(served.url, store).url(after_failure=False)
    assert store.get_meta("directoryKey") == DIRECTORY_PUBLIC_KEY


def test_a_directory_elsewhere_may_only_send_us_to_wss(store):
    home = home_cell(
        "https://d111.cloudfront.net/directory.json", store, directory_key=DIRECTORY_PUBLIC_KEY
    )
    plain = Directory.parse(directory(1, HOME, HOME, "alice"))
    with pytest.raises(RefusedDirectory, match="wss://"):
        home.check(plain)
    secure = Directory.parse(directory(1, "wss://a.example/prod", "wss://b.example/prod", "alice"))
    home.check(secure)


async def test_the_directory_is_fetched_only_on_events_never_on_a_timer(store):
    """A fake clock: every wait the SDK asks for is recorded, none is slept."""
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    async with DirectoryServer(
        directory(1, HOME, HOME, "alice"), directory(2, HOME, HOME, "alice")
    ) as served:
        # Given a client that read version 1 (it started without a directory: one fetch)
        await home_cell(served.url, store, sleep=fake_sleep).url(after_failure=False)
        assert served.gets == 1
        # When it starts again and connects, reconnects, and hears dv 1 many times
        home = home_cell(served.url, store, sleep=fake_sleep)
        for _ in range(100):
            assert await home.url(after_failure=False) == HOME
            await home.learn_version(1)
        # Then it fetched nothing, and waited for nothing
        assert (served.gets, served.copy_gets, waited) == (1, 0, [])
        # When dv 2 is heard many times: one numbered copy, after one random delay
        for _ in range(100):
            await home.learn_version(2)
        assert (served.gets, served.copy_gets, len(waited)) == (1, 1, 1)
        assert 0 <= waited[0] <= 60
