"""A cell's sides (docs/protocol.md §7): its primary and its standby region, and the
directory's bucket that says which one serves.

Plain records, importable by both of this package's assets (the directory's, which holds
no `messenger`, and the failover's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PRIMARY = "primary"
STANDBY = "standby"
SIDES = (PRIMARY, STANDBY)


@dataclass(frozen=True)
class Side:
    """One region of a cell: where its replica of the Users table is, and its API's URL.

    `region` is also the region part of the epoch its functions name (AWS_REGION, or
    CELL_EPOCH where set: the local stack passes its own names, e.g. `local-c0-standby`).
    """

    region: str
    users_table: str
    url: str


@dataclass(frozen=True)
class DirectoryRegion:
    """One region of a directory in two: its bucket, and its function a switch asks to
    publish (its ARN)."""

    bucket: str
    region: str
    publisher: str


@dataclass(frozen=True)
class DirectoryBucket:
    """The directory's bucket (infra/directory.py: output DirectoryBucketName), and, for a
    directory in two regions, its regions in the order a switch tries them (the first
    region's, then the second's)."""

    name: str
    region: str
    owner: str  # the account it must belong to (every directory region's)
    # Empty: one directory region, where a switch writes the bucket's entry and S3's
    # event runs the function (messenger_directory.failover).
    regions: tuple[DirectoryRegion, ...] = ()


@dataclass(frozen=True)
class CellSides:
    """A cell's sides, by name ("primary", "standby"): those a switch may go to."""

    cell_id: str
    sides: Mapping[str, Side]
    directory: DirectoryBucket

    def side(self, name: str) -> Side:
        """The side a switch goes to; ValueError for a name that is no side, or one the
        cell does not have."""
        if name not in SIDES:
            raise ValueError(f"switch to {' or '.join(SIDES)}, not {name!r}")
        if name not in self.sides:
            known = ", ".join(sorted(self.sides)) or "none"
            raise ValueError(f"cell {self.cell_id} has no {name!r} side (it has: {known})")
        return self.sides[name]
