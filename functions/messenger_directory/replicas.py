"""The directory in two buckets, one per directory region (docs/availability.md, "The
directory in two regions"), behind one CloudFront origin group.

Each region's directory function merges the cells' entries from the versions table both
regions share (messenger_directory.entries), and publishes into BOTH buckets: its own
first (what its merge reads), then the other (`mirror`). Numbers come from the versions
table (`versions.VersionLedger`), so either region may publish and a number still names one
document. A write to the other bucket that fails (its region is down) is left to
`reconcile`, which the schedule runs in each region: every numbered copy of the last
`RECONCILE_WINDOW` versions present in one bucket is copied into the other, and each
bucket's directory.json is raised to the newest copy either holds. Nothing here ever
lowers a directory.json (a late mirror write of N after N+1 is skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from messenger_directory.observability import logger
from messenger_directory.store import (
    InvalidDirectory,
    read_copy,
    read_directory,
    write_directory_json,
    write_numbered_copy,
)
from messenger_directory.versions import VersionLedger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from messenger_directory.entries import TableEntries

# How many of the newest versions a reconcile compares, bucket against bucket.
RECONCILE_WINDOW = 20


@dataclass(frozen=True)
class DirectoryBucketAt:
    """One directory bucket and the S3 client of its region."""

    s3: S3Client
    bucket: str


@dataclass(frozen=True)
class Replication:
    """Where a two-region directory function takes numbers from, and what it mirrors to;
    `entries`: where it reads the cells' entries (messenger_directory.entries), None: from
    its own bucket."""

    ledger: VersionLedger
    mirrors: Sequence[DirectoryBucketAt] = ()
    entries: TableEntries | None = None

    def publish(self, s3: S3Client, bucket: str, version: int, body: bytes) -> list[str]:
        """Version N into this region's bucket (an error here fails the merge), then into
        every other; the buckets it could not write (left to `reconcile`)."""
        publish_into(DirectoryBucketAt(s3, bucket), version, body)
        return self.mirror(version, body)

    def mirror(self, version: int, body: bytes) -> list[str]:
        """Version N into every other bucket; the buckets it could not write (left to
        `reconcile`, the publish stands)."""
        failed = []
        for target in self.mirrors:
            try:
                publish_into(target, version, body)
            except Exception:  # the other region may be down: reconcile repairs it
                logger.exception(
                    "directory not mirrored", extra={"bucket": target.bucket, "version": version}
                )
                failed.append(target.bucket)
        return failed


def publish_into(target: DirectoryBucketAt, version: int, body: bytes) -> None:
    """directory/N.json (once), then directory.json unless the bucket already has a
    newer one."""
    write_numbered_copy(target.s3, target.bucket, version, body)
    if _published_version(target) < version:
        write_directory_json(target.s3, target.bucket, body)


def _published_version(target: DirectoryBucketAt) -> int:
    """The bucket's directory.json version; 0 if none or unreadable (then overwritten)."""
    try:
        current = read_directory(target.s3, target.bucket)
    except InvalidDirectory:
        return 0
    return current.version if current else 0


@dataclass(frozen=True)
class ReconcileReport:
    latest: int
    # `bucket/key` of each object a reconcile wrote: zero when the buckets agreed.
    repaired: list[str] = field(default_factory=list)
    # Versions reserved in the table that no bucket holds (a publisher stopped between
    # the reservation and its first write): a gap clients skip over, never refilled.
    unpublished: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "latest": self.latest,
            "repaired": list(self.repaired),
            "unpublished": list(self.unpublished),
        }


def reconcile(
    buckets: Sequence[DirectoryBucketAt], ledger: VersionLedger, window: int = RECONCILE_WINDOW
) -> ReconcileReport:
    """Make every bucket hold the same last `window` numbered copies and the newest
    directory.json. A copy whose bytes differ between buckets raises CopyConflict."""
    latest = ledger.latest()
    report = ReconcileReport(latest)
    newest: tuple[int, bytes] | None = None
    for version in range(max(1, latest - window + 1), latest + 1):
        held = {target.bucket: read_copy(target.s3, target.bucket, version) for target in buckets}
        body = next((copy for copy in held.values() if copy is not None), None)
        if body is None:
            report.unpublished.append(version)
            continue
        newest = (version, body)
        for target in buckets:
            if held[target.bucket] is None:
                write_numbered_copy(target.s3, target.bucket, version, body)
                report.repaired.append(f"{target.bucket}/directory/{version}.json")
            elif held[target.bucket] != body:
                write_numbered_copy(target.s3, target.bucket, version, body)  # CopyConflict
    if newest is not None:
        version, body = newest
        for target in buckets:
            if _published_version(target) < version:
                write_directory_json(target.s3, target.bucket, body)
                report.repaired.append(f"{target.bucket}/directory.json")
    return report
