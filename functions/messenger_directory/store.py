"""The directory in its bucket: each cell's entry, and `directory.json` merged from them.

    write_entry(s3, bucket, "c1", "wss://a1b2.execute-api.eu-west-1.amazonaws.com/prod",
                owner=account, epoch="eu-west-1#0")
    merge(s3, bucket, shard_map, signer)   # then: directory.json, version + 1 if anything changed
    publish_map(s3, bucket, moved_map, signer)   # a shard move: the new map, version + 1

Layout of the bucket:

- `cells/<cell>.json`: `{"url": ..., "epoch": ...}`, the cell's object of §6's `cells`.
  Each cell's stack writes its own when it deploys; a failover (docs/protocol.md §7) writes
  the standby's URL and new epoch the same way.
- `directory/<version>.json`: every version ever published, signed, written once
  (`If-None-Match: *`) and cacheable forever: a version names one document (§6).
- `seed/shard-map.json`: `{"map": "<compact map>"}`, the deployment's first shard map,
  written by the directory's stack (one object, whatever the number of cells: `write_seed`);
  read only by the first merge, into a bucket with nothing published.
- `directory.json`: the newest of them, written only by `merge` (and a shard move's
  `publish_map`; the published map is kept by every merge after), which the directory
  function runs after every entry write, one at a time (reserved concurrency 1), so that
  versions never race. Each is signed by the deployment's directory key (`signer`).

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
from messenger_directory.versions import contents_digest
from messenger_protocol.cells import (
    DIRECTORY_COPIES,
    DIRECTORY_NAME,
    Directory,
    InvalidDirectory,
    ShardMap,
)
from messenger_protocol.mesh import RelayRecord, relay_record_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from messenger_directory.replicas import Replication
    from messenger_directory.signer import DirectorySigner

# The entry's S3 metadata naming the side a switch made active (`write_entry`).
SWITCHED_TO = "switched-to"
ENTRY_PREFIX = "cells/"
ENTRY_SUFFIX = ".json"
DIRECTORY_KEY = DIRECTORY_NAME
# The deployment's first shard map (`write_seed`).
SEED_MAP_KEY = "seed/shard-map.json"
# Where each version is kept forever: directory/<version>.json.
COPY_PREFIX = f"{DIRECTORY_COPIES}/"
# How long a client or CloudFront may keep a copy: a cell's new URL (a failover) is seen
# everywhere within this many seconds of the merge that published it.
CACHE_SECONDS = 5
CACHE_CONTROL = f"max-age={CACHE_SECONDS}"
# A numbered copy never changes: a CDN may keep it as long as it likes.
COPY_CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPE = "application/json"


class CopyConflict(InvalidDirectory):
    """A numbered copy of this version exists with other bytes: a version names one
    document, ever, so nothing is published (a second publisher, or a bucket restored
    from an older state, would otherwise reuse a number)."""


def copy_key(version: int) -> str:
    return f"{COPY_PREFIX}{version}.json"


def entry_key(cell_id: str) -> str:
    return f"{ENTRY_PREFIX}{cell_id}{ENTRY_SUFFIX}"


@dataclass(frozen=True)
class Entry:
    """A cell's object of §6's `cells`: where it serves, and its epoch (§7)."""

    url: str
    epoch: str


def parse_entry(cell_id: str, document: Any) -> Entry:
    """A cell's entry; InvalidDirectory if it is not a valid §6 cell object with an epoch.

    An entry is valid exactly when a directory of that one cell would be: the check is
    `Directory`'s own, not a second copy of it.
    """
    alone = {"version": 0, "shards": 1, "cells": {cell_id: document}, "shardMap": [[0, 0, cell_id]]}
    directory = Directory.parse(alone)
    epoch = directory.epoch_of(cell_id)
    if epoch is None:
        raise InvalidDirectory(f"the entry of {cell_id} has no epoch")
    return Entry(directory.url_of(cell_id), epoch)


def write_entry(
    s3: S3Client,
    bucket: str,
    cell_id: str,
    url: str,
    *,
    owner: str,
    epoch: str,
    switched_to: str | None = None,
) -> bool:
    """Publish a cell's URL and epoch (its deploy, or a failover); refused, unwritten, if
    invalid.

    `epoch`: the cell's epoch at `url` (docs/protocol.md §7). A deploy's is the first one
    (generation 0): over an existing entry a deploy keeps the epoch that entry has, since
    only a switch changes it.

    `owner`: the account the bucket must belong to. Its name is deterministic (peers
    compute it), so S3 is asked to refuse the write if someone else holds that name.

    `switched_to`: the side a switch made active (docs/protocol.md §7), kept on the entry.
    A deploy (None) writes the primary's URL, and never over an entry that a switch to
    another side wrote: False, unwritten (the cell stays failed over until a switch back).
    """
    parse_entry(cell_id, {"url": url, "epoch": epoch})
    if switched_to is None:
        if entry_switched_to(s3, bucket, cell_id, owner) not in (None, PRIMARY):
            return False
        existing = _existing_entry(s3, bucket, cell_id)
        if existing is not None:
            epoch = existing.epoch
    entry = {"url": url, "epoch": epoch}
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


def _existing_entry(s3: S3Client, bucket: str, cell_id: str) -> Entry | None:
    """The cell's entry as it is, None if there is none or it is not valid."""
    try:
        return _entry(s3, bucket, cell_id)
    except InvalidDirectory:
        return None


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


def write_seed(s3: S3Client, bucket: str, shard_map: ShardMap) -> None:
    """The deployment's first shard map, for the first merge (`merge`). Once a directory
    is published its map is the published one, which only a shard move changes: a seed
    written after that changes nothing."""
    s3.put_object(
        Bucket=bucket,
        Key=SEED_MAP_KEY,
        Body=json.dumps({"map": shard_map.to_compact()}).encode(),
        ContentType=CONTENT_TYPE,
    )


def read_seed(s3: S3Client, bucket: str) -> ShardMap | None:
    """The seeded shard map, None if the directory's stack has not written it yet;
    InvalidDirectory if it is not a map."""
    document = _read_json(s3, bucket, SEED_MAP_KEY)
    if document is None:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("map"), str):
        raise InvalidDirectory(f'{SEED_MAP_KEY} must be {{"map": "<compact map>"}}')
    return ShardMap.from_compact(document["map"])


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


def merge(
    s3: S3Client,
    bucket: str,
    configured_map: ShardMap | None,
    signer: DirectorySigner,
    first_version: int = 1,
    replication: Replication | None = None,
) -> MergeOutcome:
    """Merge the entries of the shard map's cells into a directory signed by `signer`,
    version + 1: first its numbered copy (written once), then directory.json.

    The shard map is the published directory's: once a directory exists, only a shard
    move changes its map (`publish_map`), and a merge after a cell's entry write keeps
    what the move published. `configured_map` only seeds the first version, into a
    bucket with nothing published; None: the map the stack seeded (`read_seed`), so that
    nothing of the directory function's configuration grows with the number of cells.

    Writes only when a URL, an epoch or the key changed. Reads one entry per cell of the
    map (an entry for a cell outside it is not published). CopyConflict if the next
    version's number already names another document. `first_version`: the version of the
    first publish into an empty bucket (a publisher that starts again empty, as
    `messenger local` does, gives one above any it published before: clients refuse a
    lower version, docs/protocol.md §6). `replication`: a directory in two regions
    (messenger_directory.replicas) takes its number from the versions table, reads the
    entries there (messenger_directory.entries: the bucket's, a deploy's, taken in
    first), and mirrors the version into the other region's bucket.
    """
    current = read_directory(s3, bucket)
    if current is not None:
        shard_map = current.shard_map
    else:
        seeded = configured_map or read_seed(s3, bucket)
        if seeded is None:
            raise InvalidDirectory(
                f"nothing published and no s3://{bucket}/{SEED_MAP_KEY}: deploy the "
                "directory's stack, which writes the first shard map"
            )
        shard_map = seeded
    return _publish(s3, bucket, current, shard_map, signer, first_version, replication)


def publish_map(
    s3: S3Client,
    bucket: str,
    shard_map: ShardMap,
    signer: DirectorySigner,
    first_version: int = 1,
    replication: Replication | None = None,
) -> MergeOutcome:
    """Publish the directory with a new shard map (a shard move's `publish` step,
    messenger.logic.shard_move), version + 1, signed and written like every merge: the
    numbered copy once, then directory.json. The map already published changes nothing
    (the step run again after a crash answers the version it published). Every cell of
    the new map needs an entry: until then, nothing is published (`waiting_for`).
    `replication`: as `merge`'s."""
    current = read_directory(s3, bucket)
    return _publish(s3, bucket, current, shard_map, signer, first_version, replication)


def _publish(
    s3: S3Client,
    bucket: str,
    current: Directory | None,
    shard_map: ShardMap,
    signer: DirectorySigner,
    first_version: int,
    replication: Replication | None,
) -> MergeOutcome:
    """The entries of `shard_map`'s cells, with `shard_map`, as the next version (if
    anything changed since `current`)."""
    urls: dict[str, str] = {}
    epochs: dict[str, str] = {}
    refused: dict[str, str] = {}
    entries = None if replication is None else replication.entries
    for cell_id in shard_map.cells():
        try:
            entry = (
                _entry(s3, bucket, cell_id)
                if entries is None
                else entries.take_in(s3, bucket, cell_id)
            )
        except InvalidDirectory as error:
            refused[cell_id] = str(error)
            entry = None
        if entry is None and current is not None and cell_id in current.urls:
            published_epoch = current.epoch_of(cell_id)
            if published_epoch is not None:
                entry = Entry(current.url_of(cell_id), published_epoch)
        if entry is not None:
            urls[cell_id], epochs[cell_id] = entry.url, entry.epoch
    waiting = tuple(cell_id for cell_id in shard_map.cells() if cell_id not in urls)
    if waiting:
        return MergeOutcome(current, published=False, waiting_for=waiting, refused=refused)
    public_key = signer.public_key()
    if (
        current is not None
        and (current.urls, current.epochs, current.shard_map) == (urls, epochs, shard_map)
        and current.verifies(public_key)
    ):
        return MergeOutcome(current, published=False, refused=refused)
    version = current.version + 1 if current else first_version
    if replication is not None:
        digest = contents_digest(urls, epochs, shard_map)
        version = replication.ledger.reserve_next(version - 1, digest)
    directory = Directory(version, urls, shard_map, epochs).signed_by(signer.sign_digest)
    body = json.dumps(directory.to_wire(), separators=(",", ":")).encode()
    if replication is None:
        write_numbered_copy(s3, bucket, version, body)
        write_directory_json(s3, bucket, body)
    else:
        replication.publish(s3, bucket, version, body)
    return MergeOutcome(directory, published=True, refused=refused)


def write_directory_json(s3: S3Client, bucket: str, body: bytes) -> None:
    """directory.json: what clients fetch, cached for seconds."""
    s3.put_object(
        Bucket=bucket,
        Key=DIRECTORY_KEY,
        Body=body,
        ContentType=CONTENT_TYPE,
        CacheControl=CACHE_CONTROL,
    )


def write_numbered_copy(s3: S3Client, bucket: str, version: int, body: bytes) -> None:
    """directory/<version>.json, once: S3 refuses the put if the key exists. The same bytes
    already there (a merge that stopped before directory.json) are fine; others are a
    CopyConflict, and nothing is published."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=copy_key(version),
            Body=body,
            ContentType=CONTENT_TYPE,
            CacheControl=COPY_CACHE_CONTROL,
            IfNoneMatch="*",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
            raise
        existing = s3.get_object(Bucket=bucket, Key=copy_key(version))["Body"].read()
        if existing != body:
            raise CopyConflict(
                f"s3://{bucket}/{copy_key(version)} already names another document"
            ) from None


def read_copy(s3: S3Client, bucket: str, version: int) -> bytes | None:
    """The bytes of a numbered copy, None if that version was never published."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=copy_key(version))["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchKey":
            return None
        raise
    return body


def entry_url(cell_id: str, where: str, body: bytes) -> str:
    """The URL of a cell's entry (what its users are sent to, and the probe measures),
    from the entry object's bytes read at `where`; InvalidDirectory if it is invalid."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise InvalidDirectory(f"{where} is not JSON: {error}") from None
    return parse_entry(cell_id, document).url


def _entry(s3: S3Client, bucket: str, cell_id: str) -> Entry | None:
    """A cell's entry, None if it has none; InvalidDirectory if it is invalid."""
    document = _read_json(s3, bucket, entry_key(cell_id))
    return None if document is None else parse_entry(cell_id, document)


# --- the mesh: each cell side's Relay record (docs/scale.md "The mesh") ---------------------


def write_relay_record(s3: S3Client, bucket: str, record: RelayRecord, *, owner: str) -> None:
    """Publish a cell side's Relay and relay public key at `relays/<cell>/<side>.json`,
    where its peers read it (messenger.dal.relay_directory). Apart from directory.json:
    clients never see it, and no merge is needed (each side writes its own key only)."""
    s3.put_object(
        Bucket=bucket,
        Key=relay_record_key(record.cell_id, record.side),
        Body=json.dumps(record.to_wire()).encode(),
        ContentType=CONTENT_TYPE,
        ExpectedBucketOwner=owner,
    )
