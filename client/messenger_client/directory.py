"""Where to connect: one cell's URL, or the user's home cell from the directory (§6).

A `Locator` names the WebSocket URL of each connect attempt, and says whether a refused
handshake (401/403) is worth another attempt:

- `FixedServer`: a cell's URL, given (`--server`): a refusal is final, as in v1.
- `HomeCell`: the directory at a URL (`--directory`): the user's home cell is the one
  its shard map names (`messenger_protocol.cells.Directory`). The directory and the home
  URL are kept in the history (the profile), so a restart connects even when the
  directory cannot be reached (offline first). It is fetched on a client's first
  attempt, after a failed attempt (the cell may have failed over to its standby, §7),
  and after a refused handshake: a cell that is not our home refuses us (403), and the
  directory may have moved us. A refusal is retried once per directory version: a
  directory that still sends us to a cell that refuses us ends the loop.

When the home URL differs from the one we last connected to, our home moved (a
failover): `on_home_moved` is called, and the client sends again every message without
a `delivered` receipt (§7).

Beyond §7, a failover of a *peer's* cell: a message we sent to one of its users may have
been stored (and acked) in the lost primary and never replicated, and neither our epoch
nor our home changes to tell us. So while connected the client looks at the directory
again now and then (`look_again`: on every new connection and every
`ClientSettings.directory_interval`; a failed look is ignored until the next one), and
whenever a newer version changes some cell's `url` (`moved_cells`), `on_cells_moved` is
called with that directory and those cells: the client sends again every message
without a `delivered` receipt to a user whose home is one of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from messenger_client.errors import NotConnected
from messenger_client.store import HistoryStore
from messenger_protocol.cells import Directory, InvalidDirectory

log = logging.getLogger(__name__)

# The history's meta keys: the last directory we read (with the URL it came from), and the
# home cell's URL we last connected to.
DIRECTORY_KEY = "directory"
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


async def fetch_directory(url: str, timeout: float = FETCH_TIMEOUT_SECONDS) -> Directory:
    """The directory at `url`, read and checked; NotConnected if it cannot be had."""
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
    try:
        return Directory.parse(json.loads(body))
    except (ValueError, InvalidDirectory) as error:
        raise NotConnected(f"the directory {url} is not a directory: {error}") from None


def moved_cells(before: Directory, after: Directory) -> frozenset[str]:
    """The cells a newer directory moved (a failover: another `url`); none unless
    `after`'s version is higher, as every change raises it."""
    if after.version <= before.version:
        return frozenset()
    return frozenset(cell for cell, url in after.urls.items() if before.urls.get(cell, url) != url)


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
    ) -> None:
        self.directory_url = directory_url
        self._user_id = user_id
        self._store = store
        self._on_home_moved = on_home_moved
        self._on_cells_moved = on_cells_moved
        self.directory = self._remembered()
        self._fetched = False  # by this client, once at least
        self._read_since_look = False  # read (to connect) since the last `look_again`
        self._used_version: int | None = None
        self._refused_versions: set[int] = set()

    @property
    def description(self) -> str:
        return f"the home cell of {self._user_id} (directory {self.directory_url})"

    async def url(self, *, after_failure: bool) -> str:
        if self.directory is None:
            await self._refresh()
        elif after_failure or not self._fetched:
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
        await self._refresh()
        assert self.directory is not None
        return self.directory.version not in self._refused_versions

    async def look_again(self) -> None:
        """Read the directory again while connected, to see peers' cells move; a failed
        read is ignored (the next look tries again). A read made since the last look (to
        connect: the first attempt, after a failure or a refusal) stands for this one."""
        if self._read_since_look:
            self._read_since_look = False
            return
        try:
            await self._refresh()
        except NotConnected as error:
            log.info("the directory was not read again: %s", error)
        self._read_since_look = False

    async def learn_version(self, version: int) -> None:
        """A frame named the directory's current version (`dv`, e.g. in `pong`): read the
        directory now if ours is older, rather than at the next look."""
        if self.directory is not None and version <= self.directory.version:
            return
        try:
            await self._refresh()
        except NotConnected as error:
            log.info("the directory (version %d) was not read: %s", version, error)

    async def _refresh(self) -> None:
        fetched = await fetch_directory(self.directory_url)
        self._fetched = True
        self._read_since_look = True
        previous = self.directory
        # A stale copy (a cache, a lagging replica) never replaces a newer one.
        if previous is None or fetched.version >= previous.version:
            self.directory = fetched
            remembered = {"url": self.directory_url, "directory": fetched.to_wire()}
            self._store.set_meta(DIRECTORY_KEY, json.dumps(remembered))
        moved = frozenset() if previous is None else moved_cells(previous, fetched)
        if moved:
            log.info("the directory moved cells %s", ", ".join(sorted(moved)))
            self._on_cells_moved(fetched, moved)

    def _remembered(self) -> Directory | None:
        """The directory read last time, if it came from this URL."""
        text = self._store.get_meta(DIRECTORY_KEY)
        if text is None:
            return None
        try:
            remembered = json.loads(text)
            if remembered.get("url") != self.directory_url:
                return None
            return Directory.parse(remembered.get("directory"))
        except (ValueError, AttributeError, InvalidDirectory):
            log.warning("forgot a remembered directory that no longer reads")
            return None
