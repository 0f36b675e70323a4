"""Directory version numbers, reserved in a table both directory regions write
(docs/availability.md, "The directory in two regions").

A version names exactly one document, whichever region publishes it (docs/protocol.md §6):
before a publisher writes `directory/<N>.json` it reserves N here with a conditional put
(`attribute_not_exists`), recording the digest of what N will say (the cells' URLs and
epochs and the shard map, without the version or the signature). A second publisher that
wants N for other contents is refused and takes the next free number; one that wants N for
the same contents gets it too, and since Ed25519 signatures are deterministic, both write
the same bytes.

On AWS the table is a DynamoDB global table with multi-Region strong consistency (MRSC):
a conditional write in either region sees every write acknowledged in the other, so no two
regions can both win a number. The reservation is two writes (the version's item, then the
`latest` counter, raised only upward), not a transaction: MRSC tables do not take
transactions. A publisher that stops between the two leaves `latest` one behind, which the
next reservation skips past (its first try is refused and the loop moves on).

    ledger = VersionLedger(dynamodb, "messenger-dev-directory-versions")
    version = ledger.reserve_next(after=ledger.latest(), contents=digest)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

from messenger_protocol.cells import ShardMap

# The table's one key attribute: `v#<N>` for version N, `latest` for the counter.
KEY_ATTRIBUTE = "pk"
CONTENTS_ATTRIBUTE = "contents"
LATEST_ATTRIBUTE = "latest"
LATEST_KEY = "latest"
VERSION_KEY_PREFIX = "v#"
# How many numbers one reservation tries before it gives up (each refusal is another
# publisher's version, published between our read of `latest` and our write).
MAX_ATTEMPTS = 20
_CONDITION_FAILED = "ConditionalCheckFailedException"


class VersionsExhausted(RuntimeError):
    """Every number tried was taken by other contents: publishers are racing without end."""


def version_key(version: int) -> str:
    return f"{VERSION_KEY_PREFIX}{version}"


def contents_digest(urls: Mapping[str, str], epochs: Mapping[str, str], shard_map: ShardMap) -> str:
    """What a version says, without its number or signature: equal digests, equal documents."""
    text = json.dumps(
        {"urls": dict(urls), "epochs": dict(epochs), "shardMap": shard_map.to_compact()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class VersionLedger:
    """The versions table: which contents each published number was reserved for."""

    dynamodb: DynamoDBClient
    table: str

    def latest(self) -> int:
        """The highest number reserved so far (0 before the first), read strongly."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={KEY_ATTRIBUTE: {"S": LATEST_KEY}},
            ConsistentRead=True,
        ).get("Item")
        return int(item[LATEST_ATTRIBUTE]["N"]) if item else 0

    def contents_of(self, version: int) -> str | None:
        """The digest version N was reserved for, None if N is free."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={KEY_ATTRIBUTE: {"S": version_key(version)}},
            ConsistentRead=True,
        ).get("Item")
        return item[CONTENTS_ATTRIBUTE]["S"] if item else None

    def reserve(self, version: int, contents: str) -> bool:
        """Claim `version` for `contents`: True if it is ours (newly, or already for the
        same contents), False if another document holds it."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    KEY_ATTRIBUTE: {"S": version_key(version)},
                    CONTENTS_ATTRIBUTE: {"S": contents},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": KEY_ATTRIBUTE},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            if self.contents_of(version) != contents:
                return False
        self._raise_latest(version)
        return True

    def reserve_next(self, after: int, contents: str) -> int:
        """The first number above `after` (and above `latest`) reserved for `contents`."""
        version = max(after, self.latest()) + 1
        for _ in range(MAX_ATTEMPTS):
            if self.reserve(version, contents):
                return version
            version += 1
        raise VersionsExhausted(
            f"{MAX_ATTEMPTS} directory versions from {version - MAX_ATTEMPTS} on were taken "
            "by other contents"
        )

    def _raise_latest(self, version: int) -> None:
        """`latest` := version, unless it is already as high (never lowered)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": LATEST_KEY}},
                UpdateExpression="SET #latest = :version",
                ConditionExpression="attribute_not_exists(#latest) OR #latest < :version",
                ExpressionAttributeNames={"#latest": LATEST_ATTRIBUTE},
                ExpressionAttributeValues={":version": {"N": str(version)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
