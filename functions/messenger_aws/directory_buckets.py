"""The directory's buckets as the cells and the probes read them: the first region's,
then, with the directory in two regions (`-c directorySecondRegion`, docs/availability.md),
the second's when the first cannot be read (its region lost). One rule for every object
read there: the signed directory (messenger.dal.directory_map), the peers' Relay records
(messenger.dal.relay_directory) and a cell's entry (messenger_directory.probe). Here, in
the package both assets ship, because the probe's asset imports nothing of `messenger`.

A bucket that answers "no such object" has answered: what it says stands, and the next
bucket is not asked (a record deleted in the first is not revived from the second). Only
what says nothing of the object (any other ClientError, a connection or endpoint error)
moves on to the next bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# One bucket: an S3 client's factory (for the bucket's region) and the bucket's name.
BucketSource = tuple[Callable[[], "S3Client"], str]
# What S3 answers for a key that does not exist: NoSuchKey to a reader allowed to list the
# bucket, AccessDenied otherwise (a reader admitted to some keys only).
ABSENT_CODES = ("NoSuchKey", "404", "NotFound", "AccessDenied", "403")


class BucketsUnreadable(RuntimeError):
    """No bucket of the directory answered for the object: each one's failure, in order."""


class DirectoryBuckets:
    """The first bucket, then the fallback (same owner), each client made at first need.
    `owner`: the account both buckets must belong to (ExpectedBucketOwner); None: any."""

    def __init__(
        self,
        first: BucketSource,
        owner: str | None,
        fallback: BucketSource | None = None,
    ) -> None:
        self._sources = [first, *([fallback] if fallback else [])]
        self._clients: dict[str, S3Client] = {}
        self._owner = owner

    def read(self, key: str, *, absent: Collection[str] = ()) -> tuple[str, bytes] | None:
        """`key`'s bytes from the first bucket that answers, and where from (s3://...).
        None if a bucket answered with an error code in `absent` (the object does not
        exist); BucketsUnreadable if no bucket answered."""
        failures = []
        for factory, bucket in self._sources:
            where = f"s3://{bucket}/{key}"
            if bucket not in self._clients:
                self._clients[bucket] = factory()
            client = self._clients[bucket]
            try:
                response = (
                    client.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=self._owner)
                    if self._owner
                    else client.get_object(Bucket=bucket, Key=key)
                )
                body: bytes = response["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in absent:
                    return None
                failures.append(f"{where} cannot be read: {error}")
                continue
            except BotoCoreError as error:
                failures.append(f"{where} cannot be read: {error}")
                continue
            return where, body
        raise BucketsUnreadable("; ".join(failures))
