"""The directory's functions' configuration: parsed once per container, at first use, from
the environment their stacks give them (infra/directory.py, infra/failover_automation.py).
Nothing else in this package reads `os.environ`.

- the directory function (`handlers.publish`): its bucket and key (the first shard map is
  an object in the bucket, `store.SEED_MAP_KEY`: nothing here grows with the cells);
- a standby's Failover function (`failover.failover`): the cell, its own side, the bucket;
- each side's Probe function (`probe.probe`): the cell, its vantage, its probe user.

A variable that is missing or malformed fails the invocation with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from messenger_directory.sides import STANDBY, CellSides, DirectoryBucket, DirectoryRegion, Side
from messenger_protocol.cells import is_cell_id

# Set by Lambda itself: the region the function runs in.
AWS_REGION = "AWS_REGION"


class DirectoryEnv(StrEnum):
    """The directory function's environment."""

    BUCKET = "DIRECTORY_BUCKET"
    # The directory key in KMS (its ARN): what signs every version (docs/protocol.md §6).
    KEY_ID = "DIRECTORY_KEY_ID"
    # A directory in two regions (docs/availability.md): the versions table, and the other
    # region's bucket, which every version is mirrored into. Both unset: one region.
    VERSIONS_TABLE = "DIRECTORY_VERSIONS_TABLE"
    MIRROR_BUCKET = "DIRECTORY_MIRROR_BUCKET"
    MIRROR_REGION = "DIRECTORY_MIRROR_REGION"


class FailoverEnv(StrEnum):
    """The Failover and Probe functions' environment."""

    CELL_ID = "FAILOVER_CELL_ID"
    # The standby's own side (this region): its replica and its API's URL.
    USERS_TABLE = "FAILOVER_USERS_TABLE"
    URL = "FAILOVER_URL"
    DIRECTORY_BUCKET = "FAILOVER_DIRECTORY_BUCKET"
    DIRECTORY_REGION = "FAILOVER_DIRECTORY_REGION"
    DIRECTORY_OWNER = "FAILOVER_DIRECTORY_OWNER"
    # A directory in two regions: its functions' ARNs and its buckets, comma-separated,
    # in the order a switch tries them (the first region's first). Unset: one region.
    DIRECTORY_PUBLISHERS = "FAILOVER_DIRECTORY_PUBLISHERS"
    DIRECTORY_BUCKETS = "FAILOVER_DIRECTORY_BUCKETS"
    # Optional: the SNS topic told of every automated switch, and of every alarm the
    # disarmed switch let pass.
    ALARM_TOPIC = "FAILOVER_ALARM_TOPIC"


@dataclass(frozen=True)
class PublishSettings:
    """What the directory function merges: the entries in `bucket`, by the map published
    there (or seeded), signed with the KMS key `key_id`."""

    bucket: str
    key_id: str
    # Two regions: the versions table (in this region) and the other region's bucket.
    versions_table: str | None = None
    mirror_bucket: str | None = None
    mirror_region: str | None = None

    @property
    def two_regions(self) -> bool:
        return self.versions_table is not None


class ProbeEnv(StrEnum):
    """A Probe function's environment (infra/user_probe.py)."""

    CELL_ID = "PROBE_CELL_ID"
    # Where this probe runs ("primary" or "standby": the side whose region it is in).
    VANTAGE = "PROBE_VANTAGE"
    USER_ID = "PROBE_USER_ID"
    # The Secrets Manager secret the probe user's keys derive from.
    SECRET = "PROBE_SECRET_ARN"
    # The region whose CloudWatch holds both vantages' metrics (the standby's).
    METRIC_REGION = "PROBE_METRIC_REGION"
    # Where the cell's entry (the URL users are sent to) is read.
    DIRECTORY_BUCKET = "PROBE_DIRECTORY_BUCKET"
    DIRECTORY_REGION = "PROBE_DIRECTORY_REGION"
    # With the directory in two regions: the second's bucket, read when the first cannot
    # be (unset with one region).
    DIRECTORY_FALLBACK_BUCKET = "PROBE_DIRECTORY_FALLBACK_BUCKET"
    DIRECTORY_FALLBACK_REGION = "PROBE_DIRECTORY_FALLBACK_REGION"


@dataclass(frozen=True)
class ProbeSettings:
    """What a probe measures (the cell's published URL), as whom, and where it reports."""

    cell_id: str
    vantage: str
    user_id: str
    secret: str
    # The probe's own region, where its secret is.
    region: str
    metric_region: str
    directory_bucket: str
    directory_region: str
    # The second directory region's bucket and region: empty with one region.
    directory_fallback_bucket: str = ""
    directory_fallback_region: str = ""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set")
    return value


def publish_settings_from(environ: Mapping[str, str]) -> PublishSettings:
    """The directory function's settings; ValueError naming what is missing or malformed."""
    bucket = _required(environ, DirectoryEnv.BUCKET)
    two_region = [
        environ.get(name, "").strip()
        for name in (
            DirectoryEnv.VERSIONS_TABLE,
            DirectoryEnv.MIRROR_BUCKET,
            DirectoryEnv.MIRROR_REGION,
        )
    ]
    if any(two_region) and not all(two_region):
        raise ValueError(
            f"{DirectoryEnv.VERSIONS_TABLE.value}, {DirectoryEnv.MIRROR_BUCKET.value} and "
            f"{DirectoryEnv.MIRROR_REGION.value}: all three (two regions) or none"
        )
    table, mirror_bucket, mirror_region = two_region
    return PublishSettings(
        bucket=bucket,
        key_id=_required(environ, DirectoryEnv.KEY_ID),
        versions_table=table or None,
        mirror_bucket=mirror_bucket or None,
        mirror_region=mirror_region or None,
    )


def failover_cell_from(environ: Mapping[str, str]) -> CellSides:
    """The cell as the standby's Failover function knows it: its own side only."""
    cell_id = _required(environ, FailoverEnv.CELL_ID)
    if not is_cell_id(cell_id):
        raise ValueError(f"{FailoverEnv.CELL_ID.value} must be a cell id, not {cell_id!r}")
    return CellSides(
        cell_id=cell_id,
        sides={
            STANDBY: Side(
                region=_required(environ, AWS_REGION),
                users_table=_required(environ, FailoverEnv.USERS_TABLE),
                url=_required(environ, FailoverEnv.URL),
            )
        },
        directory=DirectoryBucket(
            name=_required(environ, FailoverEnv.DIRECTORY_BUCKET),
            region=_required(environ, FailoverEnv.DIRECTORY_REGION),
            owner=_required(environ, FailoverEnv.DIRECTORY_OWNER),
            regions=_directory_regions(environ),
        ),
    )


def _listed(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def _directory_regions(environ: Mapping[str, str]) -> tuple[DirectoryRegion, ...]:
    """A directory in two regions: each region's bucket and function, in order (the
    function's ARN names the region); ValueError for anything else."""
    arns = _listed(environ, FailoverEnv.DIRECTORY_PUBLISHERS)
    buckets = _listed(environ, FailoverEnv.DIRECTORY_BUCKETS)
    if len(arns) != len(buckets):
        raise ValueError(
            f"{FailoverEnv.DIRECTORY_PUBLISHERS.value} and "
            f"{FailoverEnv.DIRECTORY_BUCKETS.value} name one function and one bucket per "
            "directory region, in the same order"
        )
    for arn in arns:
        parts = arn.split(":")
        if len(parts) != 7 or parts[0] != "arn" or parts[2] != "lambda" or parts[5] != "function":
            raise ValueError(
                f"{FailoverEnv.DIRECTORY_PUBLISHERS.value} must be Lambda function ARNs, "
                f"comma-separated, not {arn!r}"
            )
    return tuple(
        DirectoryRegion(bucket, arn.split(":")[3], arn)
        for bucket, arn in zip(buckets, arns, strict=True)
    )


def probe_settings_from(environ: Mapping[str, str]) -> ProbeSettings:
    """A probe's settings; ValueError naming what is missing."""
    return ProbeSettings(
        cell_id=_required(environ, ProbeEnv.CELL_ID),
        vantage=_required(environ, ProbeEnv.VANTAGE),
        user_id=_required(environ, ProbeEnv.USER_ID),
        secret=_required(environ, ProbeEnv.SECRET),
        region=_required(environ, AWS_REGION),
        metric_region=_required(environ, ProbeEnv.METRIC_REGION),
        directory_bucket=_required(environ, ProbeEnv.DIRECTORY_BUCKET),
        directory_region=_required(environ, ProbeEnv.DIRECTORY_REGION),
        directory_fallback_bucket=environ.get(ProbeEnv.DIRECTORY_FALLBACK_BUCKET, "").strip(),
        directory_fallback_region=environ.get(ProbeEnv.DIRECTORY_FALLBACK_REGION, "").strip(),
    )


@cache
def publish_settings() -> PublishSettings:
    return publish_settings_from(os.environ)


@cache
def failover_cell() -> CellSides:
    return failover_cell_from(os.environ)


def alarm_topic() -> str | None:
    """The topic the automated switch tells operators on (None: unset)."""
    return os.environ.get(FailoverEnv.ALARM_TOPIC.value) or None


@cache
def probe_settings() -> ProbeSettings:
    return probe_settings_from(os.environ)


def forget_settings() -> None:
    """Parse the environment again at next use (tests, which change it between cases)."""
    for parsed in (publish_settings, failover_cell, probe_settings):
        parsed.cache_clear()
