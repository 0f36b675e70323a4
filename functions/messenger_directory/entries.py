"""The cells' entries of a directory in two regions, in the versions table both regions
read and write with strong consistency (docs/availability.md, "The directory in two
regions").

With one directory region, a cell's entry is `cells/<cell>.json` in the directory's bucket
(`store.write_entry`), and S3's event runs the directory function. With two, the bucket of
the first region alone could not outlive it: the entries that are published live here,
in the versions table (a DynamoDB global table with multi-Region strong consistency), as
items `cell#<cell>`:

    {"pk": "cell#c1", "url": "wss://...", "epoch": "eu-central-1#1",
     "switchedTo": "standby", "generation": 1}

Only the directory functions write them (`TableEntries.take_in`, before each merge), from
their own bucket's entries: a deploy writes the cell's entry into the first region's
bucket; a switch writes it into a directory region's bucket (each bucket admits a cell's
roles to its own entry only) and asks that region's function to merge
(messenger_directory.failover), the first region's, else the second's. Whichever region
merges reads the same items, so both publish the same document.

The rules are the bucket's (`store.write_entry`), as conditional writes:
- a switch's write (`switched_to` set) stands only over an earlier generation (a stale
  entry, in a bucket a later switch did not reach, never undoes it);
- a deploy's write (`switched_to` None) keeps the epoch the item has (only a switch
  changes it) and is refused over an item a switch to another side than the primary
  wrote: a deploy of the primary never undoes a failover.

A bucket entry that says otherwise than the item is written back (with the side the item
names as the bucket's metadata), since what reads it there expects the URL users are
sent to: each vantage's probe, and the next deploy's guard (`store.write_entry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from messenger_directory.sides import PRIMARY, SIDES
from messenger_directory.store import (
    CONTENT_TYPE,
    SWITCHED_TO,
    Entry,
    InvalidDirectory,
    entry_key,
    parse_entry,
)
from messenger_directory.versions import KEY_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

ENTRY_KEY_PREFIX = "cell#"
URL_ATTRIBUTE = "url"
EPOCH_ATTRIBUTE = "epoch"
SWITCHED_TO_ATTRIBUTE = "switchedTo"
GENERATION_ATTRIBUTE = "generation"
_CONDITION_FAILED = "ConditionalCheckFailedException"


def entry_item_key(cell_id: str) -> str:
    return f"{ENTRY_KEY_PREFIX}{cell_id}"


def epoch_generation(epoch: str) -> int:
    """The generation an epoch names (`<region>#<generation>`, docs/protocol.md §7); 0 if
    its last part is no number (an epoch the functions were given by hand)."""
    _, _, generation = epoch.rpartition("#")
    return int(generation) if generation.isdigit() else 0


@dataclass(frozen=True)
class StoredEntry:
    """A cell's entry as the table holds it: the §6 cell object, and the side the last
    switch made active (None: no switch wrote it)."""

    entry: Entry
    switched_to: str | None = None


@dataclass(frozen=True)
class TableEntries:
    """The cells' entries in the versions table (this region's replica)."""

    dynamodb: DynamoDBClient
    table: str

    def read(self, cell_id: str) -> StoredEntry | None:
        """The cell's entry, read strongly (what the other region last wrote included);
        None if it has none."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={KEY_ATTRIBUTE: {"S": entry_item_key(cell_id)}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        switched_to = item.get(SWITCHED_TO_ATTRIBUTE, {}).get("S")
        return StoredEntry(
            Entry(item[URL_ATTRIBUTE]["S"], item[EPOCH_ATTRIBUTE]["S"]), switched_to or None
        )

    def write(self, cell_id: str, url: str, epoch: str, switched_to: str | None = None) -> bool:
        """A deploy's write (`switched_to` None) or a switch's; InvalidDirectory, nothing
        written, for what is not a §6 cell object or a side. False: refused by the rules
        above (a deploy over a failover, an older switch over a newer one)."""
        parse_entry(cell_id, {"url": url, "epoch": epoch})
        if switched_to is not None and switched_to not in SIDES:
            raise InvalidDirectory(f"switchedTo must be one of {', '.join(SIDES)}")
        names = {
            "#url": URL_ATTRIBUTE,
            "#epoch": EPOCH_ATTRIBUTE,
            "#gen": GENERATION_ATTRIBUTE,
        }
        values = {
            ":url": {"S": url},
            ":epoch": {"S": epoch},
            ":gen": {"N": str(epoch_generation(epoch))},
        }
        names["#to"] = SWITCHED_TO_ATTRIBUTE
        if switched_to is None:
            names["#pk"] = KEY_ATTRIBUTE
            values[":primary"] = {"S": PRIMARY}
            update = "SET #url = :url, #epoch = if_not_exists(#epoch, :epoch), " + (
                "#gen = if_not_exists(#gen, :gen)"
            )
            condition = "attribute_not_exists(#pk) OR attribute_not_exists(#to) OR #to = :primary"
        else:
            values[":to"] = {"S": switched_to}
            update = "SET #url = :url, #epoch = :epoch, #gen = :gen, #to = :to"
            # Strictly later: the same generation is the same switch (written already),
            # or a stale copy of it that a deploy's new URL has since replaced.
            condition = "attribute_not_exists(#gen) OR #gen < :gen"
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": entry_item_key(cell_id)}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            return False
        return True

    def take_in(self, s3: S3Client, bucket: str, cell_id: str) -> Entry | None:
        """The cell's entry to publish: first its bucket's entry (a deploy's, or a
        switch's) is taken in by the rules above, then the item is read; the bucket's
        entry is written back when it says otherwise (a deploy over a failover, a stale
        switch). InvalidDirectory for an invalid bucket entry (the cell keeps its
        published URL)."""
        in_bucket = _bucket_entry(s3, bucket, cell_id)
        stored = self.read(cell_id)
        if in_bucket is not None:
            if in_bucket.switched_to is None:
                # A deploy changes a URL only (it keeps the epoch): the item is written
                # only when the bucket brings a new one, not on every merge.
                news = stored is None or in_bucket.entry.url != stored.entry.url
            else:
                # A switch's (or a written-back copy): the generation decides.
                news = stored != in_bucket
            if news and self.write(
                cell_id, in_bucket.entry.url, in_bucket.entry.epoch, in_bucket.switched_to
            ):
                stored = self.read(cell_id)
            if stored is not None and stored != in_bucket:
                _write_back(s3, bucket, cell_id, stored)
        return None if stored is None else stored.entry


def _bucket_entry(s3: S3Client, bucket: str, cell_id: str) -> StoredEntry | None:
    """`cells/<cell>.json` with the side its metadata names; None if the bucket has none."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=entry_key(cell_id))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchKey":
            return None
        raise
    try:
        document = json.loads(answer["Body"].read())
    except ValueError as error:
        raise InvalidDirectory(f"{entry_key(cell_id)} is not JSON: {error}") from None
    switched_to = answer.get("Metadata", {}).get(SWITCHED_TO)
    return StoredEntry(parse_entry(cell_id, document), switched_to or None)


def _write_back(s3: S3Client, bucket: str, cell_id: str, stored: StoredEntry) -> None:
    """The bucket's entry := the item (what the first region's readers find there)."""
    s3.put_object(
        Bucket=bucket,
        Key=entry_key(cell_id),
        Body=json.dumps({"url": stored.entry.url, "epoch": stored.entry.epoch}).encode(),
        ContentType=CONTENT_TYPE,
        Metadata={SWITCHED_TO: stored.switched_to} if stored.switched_to else {},
    )
