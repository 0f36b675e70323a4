"""The directory of a stack of cells (docs/protocol.md §6), published as on AWS.

Each cell's entry, its URL and epoch, is written into a bucket of the embedded S3 by
`messenger_directory.store.write_entry`, and `store.merge` makes directory.json of them,
`version` + 1 per change, signed by the stack's directory key (`SeedDirectorySigner`,
where the deployment's is in KMS) and kept as directory/VERSION.json: the deployed
directory's own code. The stack writes every
cell's entry when it starts (version `first_version`: 1 unless the stack is given another,
see `messenger_local.cli.first_directory_version`); a failover writes the standby's
through the switch's ports (`entries`, and `publish`, this directory itself: where the
deployed directory function runs after an entry write, the local one merges at once).
GET /directory.json answers what the last merge published, GET /directory/N.json the
numbered copy of version N, GET /directory.key the public key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from messenger.dal.server_keys import ServerKeys
from messenger_directory.failover import BucketEntries
from messenger_directory.mesh import publish_relay_side
from messenger_directory.sides import DirectoryBucket
from messenger_directory.signer import DirectorySigner
from messenger_directory.stages import stage_variables_of
from messenger_directory.store import Entry, MergeOutcome, merge, publish_map, read_copy
from messenger_local.aws import ACCOUNT_ID, EmbeddedAws
from messenger_local.gateway import Gateway
from messenger_protocol.cells import Directory, ShardMap


class LocalDirectory:
    """A stack's directory: its bucket, the entries in it, and the document published."""

    def __init__(
        self,
        aws: EmbeddedAws,
        bucket: str,
        shard_map: ShardMap,
        signer: DirectorySigner,
        stages: Sequence[Gateway] = (),
        first_version: int = 1,
    ) -> None:
        self.shard_map = shard_map
        self.signer = signer
        self._first_version = first_version
        # The cells' stages, whose `dv` variable each publish sets (as the directory
        # function's UpdateStage does on AWS), so that `pong` carries the new version.
        self._stages = tuple(stages)
        self._aws = aws
        self._s3 = aws.client("s3")
        self.bucket = DirectoryBucket(bucket, aws.region, ACCOUNT_ID)
        self.entries = BucketEntries(self._s3, self.bucket)
        self._published: Directory | None = None

    def open(self, entries: Mapping[str, Entry]) -> None:
        """Make the bucket, write each cell's entry (as each cell's deploy does on AWS),
        and publish them."""
        self._s3.create_bucket(Bucket=self.bucket.name)
        for cell_id, entry in entries.items():
            self.entries.write(cell_id, entry.url, entry.epoch)
        self.publish()

    def publish_relay(self, keys: ServerKeys, cell_id: str, side: str, relay: str) -> None:
        """A cell side's relay key (made among `keys` if it has none) and its Relay record,
        as that side's deploy writes them on AWS (docs/scale.md "The mesh")."""
        publish_relay_side(keys, self._s3, self.bucket.name, ACCOUNT_ID, cell_id, side, relay)

    def publish(self) -> None:
        """Merge the entries into directory.json, as the directory function does."""
        self._published_by(
            merge(self._s3, self.bucket.name, self.shard_map, self.signer, self._first_version)
        )

    def publish_map(self, shard_map: ShardMap) -> None:
        """Publish with a new shard map (a shard move, messenger_local.moves), as the
        directory function does for a move's Mover."""
        self._published_by(
            publish_map(self._s3, self.bucket.name, shard_map, self.signer, self._first_version)
        )
        self.shard_map = shard_map

    def _published_by(self, outcome: MergeOutcome) -> None:
        if outcome.directory is None or outcome.waiting_for or outcome.refused:
            raise RuntimeError(f"the directory was not published: {outcome.summary()}")
        self._published = outcome.directory
        for stage in self._stages:
            stage.stage_variables.update(stage_variables_of(outcome.directory))

    @property
    def current(self) -> Directory:
        """What GET /directory.json answers: the last published version."""
        if self._published is None:
            raise RuntimeError("the directory is published once the stack has started")
        return self._published

    def copy(self, version: int) -> bytes | None:
        """What GET /directory/VERSION.json answers: that version's bytes, None if never
        published."""
        return read_copy(self._s3, self.bucket.name, version)

    def close(self) -> None:
        """Drop the bucket and what is in it (a stack on a shared embedded AWS)."""
        self._aws.delete_bucket(self.bucket.name)
