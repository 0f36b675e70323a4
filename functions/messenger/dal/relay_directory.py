"""The peers' Relays and relay keys, read from the directory's bucket (docs/scale.md "The
mesh"): one record per side of a cell at `relays/<cell>/<side>.json`
(messenger_protocol.mesh), written by that side's deploy, never by this cell.

A record is read when a peer is first called or first calls, and kept `RECORD_TTL_MS`, so
a cell holds records only of the peers it talks to and a new cell (or a new key) is
known everywhere within that time without redeploying anyone. A deployment of one cell
has no bucket and no peers: `sides_of` is always empty.

With the directory in two regions, each side's deploy writes its record into both buckets
(messenger_directory.mesh), and a record the first bucket cannot give (its region lost) is
read from the second (messenger_aws.directory_buckets); a record the first bucket says does not
exist does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from messenger.logic.clock import Clock
from messenger.observability import logger
from messenger_aws.directory_buckets import ABSENT_CODES, BucketSource, DirectoryBuckets
from messenger_protocol.mesh import (
    RECORD_SIDES,
    InvalidRelayRecord,
    RelayRecord,
    relay_record_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECORD_TTL_MS = 60_000
# A record asked for again sooner than this is not read again, even after a signature
# that did not verify (so that forged calls cannot make a cell read S3 for each).
RECORD_REFRESH_MS = 5_000


class RelayDirectory:
    """The records of the peers' sides, each read at first need and kept a minute."""

    def __init__(
        self,
        s3_factory: Callable[[], S3Client],
        bucket: str,
        owner: str,
        clock: Clock,
        fallback: BucketSource | None = None,
    ) -> None:
        """`fallback`: the directory's second region (its S3 client's factory and its
        bucket, of the same owner), read when `bucket` cannot be (its region lost)."""
        self._buckets = DirectoryBuckets((s3_factory, bucket), owner, fallback)
        self._bucket = bucket
        self._clock = clock
        self._kept: dict[str, tuple[int, tuple[RelayRecord, ...]]] = {}

    @property
    def has_peers(self) -> bool:
        """Whether the deployment has a directory bucket: False for one cell alone."""
        return bool(self._bucket)

    def sides_of(self, cell_id: str, *, fresh: bool = False) -> tuple[RelayRecord, ...]:
        """A peer's published sides, its primary first; empty if it has published none.
        `fresh`: read again unless read in the last RECORD_REFRESH_MS (a key may be new)."""
        if not self._bucket:
            return ()
        now = self._clock.now_ms()
        kept = self._kept.get(cell_id)
        max_age = RECORD_REFRESH_MS if fresh else RECORD_TTL_MS
        if kept is not None and now - kept[0] < max_age:
            return kept[1]
        records = tuple(
            record for side in RECORD_SIDES if (record := self._read(cell_id, side)) is not None
        )
        self._kept[cell_id] = (now, records)
        return records

    def _read(self, cell_id: str, side: str) -> RelayRecord | None:
        """The side's record, None if it has none; BucketsUnreadable if no bucket answers."""
        found = self._buckets.read(relay_record_key(cell_id, side), absent=ABSENT_CODES)
        if found is None:
            return None
        where, body = found
        try:
            record = RelayRecord.parse(json.loads(body))
        except (ValueError, InvalidRelayRecord) as error:
            logger.error("relay record unreadable", extra={"at": where})
            raise InvalidRelayRecord(f"{cell_id}/{side}: {error}") from None
        if (record.cell_id, record.side) != (cell_id, side):
            raise InvalidRelayRecord(f"{cell_id}/{side} holds the record of another side")
        return record
