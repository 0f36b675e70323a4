"""Where to connect: one cell's URL, or the user's home cell from the directory (§6).

A `Locator` names the WebSocket URL of each connect attempt, and says whether a refused
handshake (401/403) is worth another attempt:

- `FixedServer`: a cell's URL, given (`--server`): a refusal is final, as in v1.
- `HomeCell`: the directory at a URL (`--directory`): the user's home cell is the one
  its shard map names (`messenger_protocol.cells.Directory`).

The directory is trusted only as far as its signature (docs/protocol.md §6): a document
is accepted only if it verifies against the deployment's directory key (the profile's,
given with `--directory-key`; for a directory on this machine, read once from its
`/directory.key` and kept), its version is not lower than the highest accepted, and each
cell URL is `wss://` (or `ws://` when the directory itself is on loopback over http).
Anything else is refused and the client keeps what it had: a spoofed directory, however
high its version, never sticks. Only an accepted directory is kept in the history (the
profile), with its version, cells and epochs, so a restart connects at once, offline
first, and a rolled-back copy is refused across restarts too.

It is fetched only when §6 says (never on a timer): when the client starts without one;
after a failed attempt (the cell cannot be reached: it may have failed over, §7); after a
refused handshake (a cell that is not our home refuses us, 403); and when a frame's `dv`
is above our version, then the numbered copy `directory/N.json` after a random delay of
up to `ClientSettings.directory_jitter` seconds, so that a change does not bring every
client at once. A refusal is retried once per directory version: a directory that still
sends us to a cell that refuses us ends the loop.

When the home URL differs from the one we last connected to, our home moved (a
failover): `on_home_moved` is called, and the client sends again every message without
a `delivered` receipt (§7). Beyond §7, when a newer version changes some cell's `url`
(`moved_cells`: a peer's cell failed over, and a message we sent there may be lost with
its primary), `on_cells_moved` is called with that directory and those cells.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from messenger_client.errors import NotConnected
from messenger_client.store import HistoryStore
from messenger_protocol.cells import (
    DIRECTORY_KEY_NAME,
    DIRECTORY_NAME,
    Directory,
    InvalidDirectory,
    numbered_copy_url,
)
from messenger_protocol.encoding import decoded_length, is_base64url
from messenger_protocol.limits import DIRECTORY_FETCH_JITTER_SECONDS, KEY_BYTES

log = logging.getLogger(__name__)

# The history's meta keys: the last directory we accepted (with the URL it came from), the
# directory's public key, and the home cell's URL we last connected to.
DIRECTORY_KEY = "directory"
DIRECTORY_PUBLIC_KEY = "directoryKey"
HOME_URL_KEY = "homeUrl"
FETCH_TIMEOUT_SECONDS = 10.0
# The directory is a few hundred bytes per cell: anything much larger is not one.
MAX_DIRECTORY_BYTES = 1 << 20
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Locator(Protocol):
    """Where each connect attempt goes."""

    @property
    def description(self) -> str:
        """What to name in messages (never a signed URL)."""
        ...

    async def url(self, *, after_failure: bool) -> str:
        """The WebSocket URL to connect to now; `after_failure`: the last attempt failed.
        NotConnected when there is none to give yet."""
        ...

    async def refused(self) -> bool:
        """The handshake was refused (401/403): True to try again at once."""
        ...


class FixedServer:
    """One cell's URL (or a single-cell deployment's): always the same, a refusal final."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def description(self) -> str:
        return self._url

    async def url(self, *, after_failure: bool) -> str:
        return self._url

    async def refused(self) -> bool:
        return False


def is_loopback(url: str) -> bool:
    """Whether `url` is on this machine (a `messenger local` directory)."""
    return (urlsplit(url).hostname or "") in _LOOPBACK_HOSTS


def is_directory_key(value: object) -> bool:
    """A directory public key: 32 bytes, base64url."""
    return isinstance(value, str) and is_base64url(value) and decoded_length(value) == KEY_BYTES


async def fetch_directory_key(directory_url: str) -> str:
    """The key a directory on this machine serves at /directory.key (`messenger local`);
    ValueError for a directory elsewhere (its key comes with the app or the profile,
    never from the network it could be spoofed on); NotConnected if it cannot be had."""
    if not is_loopback(directory_url) or not directory_url.endswith(DIRECTORY_NAME):
        raise ValueError(
            f"the directory {directory_url} is not on this machine: give its key "
            "(--directory-key, the deployment's DirectoryPublicKey output)"
        )
    url = directory_url.removesuffix(DIRECTORY_NAME) + DIRECTORY_KEY_NAME
    key = (await _fetch(url)).decode(errors="replace").strip()
    if not is_directory_key(key):
        raise NotConnected(f"{url} is not a directory key")
    return key


async def fetch_directory(url: str, timeout: float = FETCH_TIMEOUT_SECONDS) -> Directory:
    """The directory at `url`, read and checked (not verified: `HomeCell.accept` does);
    NotConnected if it cannot be had."""
    body = await _fetch(url, timeout)
    try:
        return Directory.parse(json.loads(body))
    except (ValueError, InvalidDirectory) as error:
        raise NotConnected(f"the directory {url} is not a directory: {error}") from None


async def _fetch(url: str, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """The body at `url` (at most a directory's size); NotConnected if it cannot be had."""
    host = urlsplit(url).hostname or ""
    try:
        # A directory on this machine is never behind a proxy; elsewhere, the system's.
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout), trust_env=host not in _LOOPBACK_HOSTS
            ) as http,
            http.get(url, headers={"Cache-Control": "no-cache"}) as response,
        ):
            if response.status != 200:
                raise NotConnected(f"the directory {url} answered HTTP {response.status}")
            body = await response.content.read(MAX_DIRECTORY_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise NotConnected(f"the directory {url} cannot be reached: {error}") from None
    if len(body) > MAX_DIRECTORY_BYTES:
        raise NotConnected(f"the directory {url} is larger than a directory can be")
    return body


def moved_cells(before: Directory, after: Directory) -> frozenset[str]:
    """The cells a newer directory moved (a failover: another `url`); none unless
    `after`'s version is higher, as every change raises it."""
    if after.version <= before.version:
        return frozenset()
    return frozenset(cell for cell, url in after.urls.items() if before.urls.get(cell, url) != url)


class RefusedDirectory(ValueError):
    """A directory that is not to be trusted: badly signed, rolled back, or naming a cell
    URL a client must not connect to."""


class HomeCell:
    """The user's home cell, as the directory at `directory_url` names it."""

    def __init__(
        self,
        directory_url: str,
        user_id: str,
        store: HistoryStore,
        *,
        on_home_moved: Callable[[], None],
        on_cells_moved: Callable[[Directory, frozenset[str]], None],
        directory_key: str | None = None,
        jitter_seconds: float = DIRECTORY_FETCH_JITTER_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        fetch: Callable[[str], Awaitable[Directory]] = fetch_directory,
    ) -> None:
        """`directory_key`: the deployment's (base64url); None: the one the history keeps,
        else, for a directory on this machine, the one it serves (then kept).
        `jitter_seconds`, `sleep`, `fetch`: the delay before fetching a numbered copy, and
        how to wait and fetch (tests give a fake clock and count fetches)."""
        if directory_key is not None and not is_directory_key(directory_key):
            raise ValueError("a directory key is 32 bytes in base64url")
        self.directory_url = directory_url
        self._user_id = user_id
        self._store = store
        self._on_home_moved = on_home_moved
        self._on_cells_moved = on_cells_moved
        self._jitter_seconds = jitter_seconds
        self._sleep = sleep
        self._fetch = fetch
        self._key = directory_key or store.get_meta(DIRECTORY_PUBLIC_KEY)
        if directory_key is not None:
            store.set_meta(DIRECTORY_PUBLIC_KEY, directory_key)
        self.directory = self._remembered()
        self._used_version: int | None = None
        self._refused_versions: set[int] = set()
        self._wanted_version = 0  # the highest `dv` a numbered copy is on its way for

    @property
    def description(self) -> str:
        return f"the home cell of {self._user_id} (directory {self.directory_url})"

    async def url(self, *, after_failure: bool) -> str:
        await self.ensure_key()
        if self.directory is None:
            await self._refresh()
        elif after_failure:
            # Our cell cannot be reached: it may have failed over (§7).
            try:
                await self._refresh()
            except NotConnected as error:
                # Offline first: the directory we know is the best guess meanwhile.
                log.info("keeping directory version %d: %s", self.directory.version, error)
        assert self.directory is not None
        home = self.directory.home_url(self._user_id)
        previous = self._store.get_meta(HOME_URL_KEY)
        if home != previous:
            self._store.set_meta(HOME_URL_KEY, home)
            if previous is not None:
                log.info("the directory moved our home cell to %s", home)
                self._on_home_moved()
        self._used_version = self.directory.version
        return home

    async def refused(self) -> bool:
        if self._used_version is not None:
            self._refused_versions.add(self._used_version)
        await self.ensure_key()
        await self._refresh()
        assert self.directory is not None
        return self.directory.version not in self._refused_versions

    async def learn_version(self, version: int, *, at_once: bool = False) -> None:
        """A frame named the directory's current version (`dv`: `ack`, `syncDone`,
        `pong`): if it is above ours, fetch that version's numbered copy after a random
        delay (none `at_once`: the client needs it to decide something now), once per
        version; a copy that cannot be had waits for the next event."""
        if self.directory is None or version <= self.directory.version:
            return
        if not at_once:
            if version <= self._wanted_version:
                return  # already on its way
            self._wanted_version = version
            await self._sleep(random.uniform(0, self._jitter_seconds))
            if self.directory is not None and version <= self.directory.version:
                return  # a fetch meanwhile (a refusal, a failure) brought it
        self._wanted_version = max(self._wanted_version, version)
        try:
            self._accept(await self._fetch(numbered_copy_url(self.directory_url, version)))
        except (NotConnected, RefusedDirectory, ValueError) as error:
            log.warning("the directory version %d was not taken: %s", version, error)

    async def _refresh(self) -> None:
        """Fetch the directory at its stable URL and accept it; NotConnected if it cannot
        be had or is refused (we keep what we had)."""
        fetched = await self._fetch(self.directory_url)
        try:
            self._accept(fetched)
        except RefusedDirectory as error:
            log.warning("refused the directory at %s: %s", self.directory_url, error)
            if self.directory is None:
                raise NotConnected(f"the directory {self.directory_url}: {error}") from None

    def check(self, directory: Directory) -> None:
        """RefusedDirectory unless `directory` may replace ours (§6)."""
        if not directory.verifies(self._key or ""):
            raise RefusedDirectory(f"version {directory.version} is not signed by our key")
        if self.directory is not None and directory.version < self.directory.version:
            raise RefusedDirectory(
                f"version {directory.version} is older than ours ({self.directory.version})"
            )
        allowed = ("wss://", "ws://") if self._local_directory() else ("wss://",)
        for cell, url in directory.urls.items():
            if not url.startswith(allowed):
                raise RefusedDirectory(f"cell {cell}'s URL is not {' or '.join(allowed)}")

    def _accept(self, fetched: Directory) -> None:
        if self._key is None:
            raise RefusedDirectory(
                "no directory key: give it (--directory-key) with the directory's URL"
            )
        self.check(fetched)
        previous = self.directory
        self.directory = fetched
        remembered = {"url": self.directory_url, "directory": fetched.to_wire()}
        self._store.set_meta(DIRECTORY_KEY, json.dumps(remembered))
        moved = frozenset() if previous is None else moved_cells(previous, fetched)
        if moved:
            log.info("the directory moved cells %s", ", ".join(sorted(moved)))
            self._on_cells_moved(fetched, moved)

    def _local_directory(self) -> bool:
        return self.directory_url.startswith("http://") and is_loopback(self.directory_url)

    async def ensure_key(self) -> None:
        """Without a key, read the one a directory on this machine serves, and keep it;
        nothing for a directory elsewhere (its documents are then all refused)."""
        if self._key is not None or not is_loopback(self.directory_url):
            return
        self._key = await fetch_directory_key(self.directory_url)
        self._store.set_meta(DIRECTORY_PUBLIC_KEY, self._key)

    def _remembered(self) -> Directory | None:
        """The directory accepted last time, if it came from this URL and verifies."""
        text = self._store.get_meta(DIRECTORY_KEY)
        if text is None:
            return None
        try:
            remembered = json.loads(text)
            if remembered.get("url") != self.directory_url:
                return None
            directory = Directory.parse(remembered.get("directory"))
        except (ValueError, AttributeError, InvalidDirectory):
            log.warning("forgot a remembered directory that no longer reads")
            return None
        if not directory.verifies(self._key or ""):
            log.warning("forgot a remembered directory our key did not sign")
            return None
        return directory
