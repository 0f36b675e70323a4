"""The directory in its bucket: each cell's entry, and `directory.json` merged from them.

    write_entry(s3, bucket, "c1", "wss://a1b2.execute-api.eu-west-1.amazonaws.com/prod")
    merge(s3, bucket, shard_map)       # then: directory.json, version + 1 if anything changed

Layout of the bucket:

- `cells/<cell>.json`: `{"url": ...}`, the cell's object of §6's `cells`. Each cell's stack
  writes its own when it deploys; a failover (docs/protocol.md §7) writes the standby's URL
  the same way.
- `directory.json`: the §6 document, written only by `merge`, which the directory function
  runs after every entry write, one at a time (reserved concurrency 1), so that versions
  never race.

Nothing reaches `directory.json` without passing `messenger_protocol.cells.Directory`: an
entry that is not a valid cell object is refused (the cell keeps the URL it had), and a map
whose cells do not all have a URL yet waits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from messenger_directory.sides import PRIMARY
from messenger_protocol.cells import Directory, InvalidDirectory, ShardMap

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The entry's S3 metadata naming the side a switch made active (`write_entry`).
SWITCHED_TO = "switched-to"
ENTRY_PREFIX = "cells/"
ENTRY_SUFFIX = ".json"
DIRECTORY_KEY = "directory.json"
# How long a client or CloudFront may keep a copy: a cell's new URL (a failover) is seen
# everywhere within this many seconds of the merge that published it.
CACHE_SECONDS = 5
CACHE_CONTROL = f"max-age={CACHE_SECONDS}"
CONTENT_TYPE = "application/json"


def entry_key(cell_id: str) -> str:
    return f"{ENTRY_PREFIX}{cell_id}{ENTRY_SUFFIX}"


def parse_entry(cell_id: str, document: Any) -> str:
    """The URL of a cell's entry; InvalidDirectory if it is not a valid §6 cell object.

    An entry is valid exactly when a directory of that one cell would be: the check is
    `Directory`'s own, not a second copy of it.
    """
    alone = {"version": 0, "shards": 1, "cells": {cell_id: document}, "shardMap": [[0, 0, cell_id]]}
    return Directory.parse(alone).url_of(cell_id)


def write_entry(
    s3: S3Client,
    bucket: str,
    cell_id: str,
    url: str,
    *,
    owner: str,
    switched_to: str | None = None,
) -> bool:
    """Publish a cell's URL (its deploy, or a failover); refused, unwritten, if invalid.

    `owner`: the account the bucket must belong to. Its name is deterministic (peers
    compute it), so S3 is asked to refuse the write if someone else holds that name.

    `switched_to`: the side a switch made active (docs/protocol.md §7), kept on the entry.
    A deploy (None) writes the primary's URL, and never over an entry that a switch to
    another side wrote: False, unwritten (the cell stays failed over until a switch back).
    """
    entry = {"url": url}
    parse_entry(cell_id, entry)
    if switched_to is None and entry_switched_to(s3, bucket, cell_id, owner) not in (
        None,
        PRIMARY,
    ):
        return False
    s3.put_object(
        Bucket=bucket,
        Key=entry_key(cell_id),
        Body=json.dumps(entry).encode(),
        ContentType=CONTENT_TYPE,
        ExpectedBucketOwner=owner,
        Metadata={SWITCHED_TO: switched_to} if switched_to else {},
    )
    return True


def entry_switched_to(s3: S3Client, bucket: str, cell_id: str, owner: str) -> str | None:
    """The side the last switch wrote into a cell's entry; None: no switch wrote it."""
    try:
        head = s3.head_object(Bucket=bucket, Key=entry_key(cell_id), ExpectedBucketOwner=owner)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("Metadata", {}).get(SWITCHED_TO)


def _read_json(s3: S3Client, bucket: str, key: str) -> Any | None:
    """The decoded object, or None if there is none (the function may list the bucket, so
    S3 says NoSuchKey rather than AccessDenied)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchKey":
            return None
        raise
    try:
        return json.loads(body)
    except ValueError as error:
        raise InvalidDirectory(f"{key} is not JSON: {error}") from None


def read_directory(s3: S3Client, bucket: str) -> Directory | None:
    """The published directory, None before the first merge; InvalidDirectory if broken.

    A broken directory.json stops merges (its version cannot be trusted to increase):
    fix or delete it, and the next merge publishes again.
    """
    document = _read_json(s3, bucket, DIRECTORY_KEY)
    if document is None:
        return None
    try:
        return Directory.parse(document)
    except InvalidDirectory as error:
        raise InvalidDirectory(
            f"s3://{bucket}/{DIRECTORY_KEY} is not a directory: {error}"
        ) from None


@dataclass(frozen=True)
class MergeOutcome:
    # What clients get now (None: nothing published yet).
    directory: Directory | None
    # Whether this merge wrote a new version.
    published: bool
    # Cells of the shard map with no URL yet: nothing is published until each has one.
    waiting_for: tuple[str, ...] = ()
    # Cell -> why its entry was refused (it keeps its published URL).
    refused: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.directory.version if self.directory else None,
            "published": self.published,
            "waitingFor": list(self.waiting_for),
            "refused": dict(self.refused),
        }


def merge(s3: S3Client, bucket: str, shard_map: ShardMap, first_version: int = 1) -> MergeOutcome:
    """Merge the entries of the shard map's cells into directory.json, version + 1.

    Writes only when a URL or the map changed. Reads one entry per cell of the map (an
    entry for a cell outside it is not published). `first_version`: the version of the
    first publish into an empty bucket (a publisher that starts again empty, as
    `messenger local` does, gives one above any it published before: clients refuse a
    lower version, docs/protocol.md §6).
    """
    current = read_directory(s3, bucket)
    urls: dict[str, str] = {}
    refused: dict[str, str] = {}
    for cell_id in shard_map.cells():
        try:
            url = entry_url(s3, bucket, cell_id)
        except InvalidDirectory as error:
            refused[cell_id] = str(error)
            url = None
        if url is None and current is not None:
            url = current.urls.get(cell_id)
        if url is not None:
            urls[cell_id] = url
    waiting = tuple(cell_id for cell_id in shard_map.cells() if cell_id not in urls)
    if waiting:
        return MergeOutcome(current, published=False, waiting_for=waiting, refused=refused)
    if current is not None and current.urls == urls and current.shard_map == shard_map:
        return MergeOutcome(current, published=False, refused=refused)
    directory = Directory(current.version + 1 if current else first_version, urls, shard_map)
    s3.put_object(
        Bucket=bucket,
        Key=DIRECTORY_KEY,
        Body=json.dumps(directory.to_wire(), separators=(",", ":")).encode(),
        ContentType=CONTENT_TYPE,
        CacheControl=CACHE_CONTROL,
    )
    return MergeOutcome(directory, published=True, refused=refused)


def entry_url(s3: S3Client, bucket: str, cell_id: str) -> str | None:
    """The URL of a cell's entry, None if it has none; InvalidDirectory if it is invalid."""
    document = _read_json(s3, bucket, entry_key(cell_id))
    return None if document is None else parse_entry(cell_id, document)
