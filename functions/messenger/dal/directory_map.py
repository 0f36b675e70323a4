"""The shard map a cell serves by: read from the signed directory the deployment publishes
(docs/protocol.md §6), `directory.json` in the directory's bucket, beside the peers' Relay
records (dal/relay_directory.py). Nothing of the map is in the cell's environment, so
nothing there grows with the number of cells (docs/scale.md "The mesh").

A document is believed only if its signature verifies against the deployment's directory
public key (DIRECTORY_PUBLIC_KEY) and its version is not lower than the one kept: the
same rule as every client's. The map is kept `MAP_TTL_MS` and read again after that; a
read that fails (S3, a bad signature, a rolled-back version) keeps what was kept, and is
tried again no sooner than `RETRY_MS`. A cell that has never read a valid directory (a
cold start before the first publish, a wrong key) fails closed: `DirectoryUnavailable`,
never a guessed map.

What shard moves changed since the publish is read apart, from the cell's own table
(dal/shard_states.py), and overrides the map (logic/cells.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from messenger.logic.clock import Clock
from messenger.observability import logger
from messenger_aws.directory_buckets import BucketSource, BucketsUnreadable, DirectoryBuckets
from messenger_protocol.cells import DIRECTORY_NAME, Directory, InvalidDirectory, ShardMap

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# How long a read map is used before it is read again. A publish changes the map only by
# a shard move, whose ranges every cell already follows from its own table (shard_states),
# so the published map may lag by this much.
MAP_TTL_MS = 60_000
# After a failed read, the next try waits this long (a missing or forged directory must
# not turn every invocation into an S3 read).
RETRY_MS = 5_000


class DirectoryUnavailable(RuntimeError):
    """No verified directory to serve by: the cell refuses rather than guess a map."""


class DirectoryShardMap:
    """The published directory's shard map, verified, kept `ttl_ms`."""

    def __init__(
        self,
        s3_factory: Callable[[], S3Client],
        bucket: str,
        owner: str,
        public_key: str,
        clock: Clock,
        ttl_ms: int = MAP_TTL_MS,
        fallback: BucketSource | None = None,
    ) -> None:
        """`fallback`: the directory's second region (its S3 client's factory and its
        bucket, of the same owner), read when `bucket` cannot be (its region lost)."""
        self._buckets = DirectoryBuckets((s3_factory, bucket), owner, fallback)
        self._public_key = public_key
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._kept: Directory | None = None
        self._read_at_ms: int | None = None
        self._failed_at_ms: int | None = None
        self._failure: DirectoryUnavailable | None = None

    @property
    def version(self) -> int | None:
        """The version of the directory kept, None before the first good read."""
        return self._kept.version if self._kept else None

    def current(self) -> ShardMap:
        """The map of the newest verified directory read; DirectoryUnavailable if there
        has never been one."""
        now = self._clock.now_ms()
        if self._read_at_ms is not None and now - self._read_at_ms < self._ttl_ms:
            return self._kept_map()
        if self._failed_at_ms is not None and now - self._failed_at_ms < RETRY_MS:
            return self._kept_map()
        try:
            directory = self._read()
        except DirectoryUnavailable as error:
            self._failed_at_ms, self._failure = now, error
            if self._kept is None:
                raise
            logger.warning(
                "directory not read again, serving the version kept",
                extra={"version": self._kept.version, "reason": str(error)},
            )
            return self._kept.shard_map
        self._kept, self._read_at_ms = directory, now
        self._failed_at_ms = self._failure = None
        return directory.shard_map

    def forget(self) -> None:
        """Read again at next use (what was kept stays, should the read fail)."""
        self._read_at_ms = self._failed_at_ms = None

    def _kept_map(self) -> ShardMap:
        if self._kept is None:
            assert self._failure is not None
            raise self._failure
        return self._kept.shard_map

    def _fetch(self) -> tuple[str, bytes]:
        """directory.json's bytes from the first bucket that answers, and where from. A
        directory missing in the first bucket is read from the second (a mirror write
        the reconcile has not yet repaired): no answer counts as "absent" here."""
        try:
            found = self._buckets.read(DIRECTORY_NAME)
        except BucketsUnreadable as error:
            raise DirectoryUnavailable(str(error)) from None
        assert found is not None  # (nothing counts as absent)
        return found

    def _read(self) -> Directory:
        """directory.json, parsed and verified, and not older than the version kept."""
        where, body = self._fetch()
        try:
            directory = Directory.parse(json.loads(body))
        except (ValueError, InvalidDirectory) as error:
            raise DirectoryUnavailable(f"{where} is not a directory: {error}") from None
        if not directory.verifies(self._public_key):
            logger.error("directory signature refused", extra={"version": directory.version})
            raise DirectoryUnavailable(
                f"{where} (version {directory.version}) is not signed by the directory key"
            )
        if self._kept is not None and directory.version < self._kept.version:
            raise DirectoryUnavailable(
                f"{where} went back to version {directory.version} from {self._kept.version}"
            )
        return directory
