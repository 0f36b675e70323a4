"""Cells and the directory (docs/protocol.md §6): which cell is a user's home.

    directory = Directory.parse(json.loads(text))
    directory.verifies(directory_public_key)   # a client given the deployment's key
    directory.home_of("alice")       # "c1"
    directory.url_of("c1")           # "wss://.../prod"
    directory.epoch_of("c1")         # "us-east-1#1"
    Directory(version, urls, shard_map, epochs).sign(directory_signing_key)   # a publisher

`shard(user_id)` is the first 4 bytes of SHA-256 of the UTF-8 user id, big-endian,
modulo the number of shards; the shard map's inclusive ranges cover every shard once.

Signing and verifying need libsodium (PyNaCl); it is imported when first used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from messenger_protocol.encoding import b64url_encode, decoded_length, is_base64url, is_epoch
from messenger_protocol.limits import (
    CELL_ID_PATTERN,
    DIRECTORY_SIGNING_PREFIX,
    SIGNATURE_BYTES,
)
from messenger_protocol.signatures import sign, verifies

# The API stage variable holding the newest directory version a cell knows (`dv`,
# docs/protocol.md §6): the
# directory publisher sets it on every cell's stage right after it publishes, API Gateway
# answers `pong` from it and passes it to the functions in every event. Here, in the
# package both the cell's functions and the directory's import.
DIRECTORY_VERSION_STAGE_VARIABLE = "dv"
# The API stage variable a switch sets to "1" on the side it demotes (and "0" on the side it
# makes active): API Gateway then answers `ping` there with `error` MOVED instead of
# `pong` (docs/protocol.md §7 Fencing), as the functions answer every other frame.
FENCED_STAGE_VARIABLE = "fenced"

if TYPE_CHECKING:
    from nacl.signing import SigningKey

# New deployments and `messenger local` (a thousand cells or more get near-equal shares);
# a deployment keeps the count it was created with.
DEFAULT_SHARDS = 65536
# The directory's name at its stable URL; every version is also at DIRECTORY_COPIES/N.json
# beside it. Locally, the directory's public key is served as text at DIRECTORY_KEY_NAME.
DIRECTORY_NAME = "directory.json"
DIRECTORY_COPIES = "directory"
DIRECTORY_KEY_NAME = "directory.key"
_CELL_ID = re.compile(CELL_ID_PATTERN)
# What a shard move's Mover (a cell's function) asks the directory function
# (messenger_directory.handlers.publish), and the answers' fields: `{MOVE_REQUEST:
# MOVE_CURRENT}` -> `{MOVE_MAP: <compact map>, "version": N}`; `{MOVE_REQUEST: MOVE_PUBLISH,
# MOVE_MAP: <compact map>}` -> `{"version": N, "published": bool, ...}` (version + 1).
MOVE_REQUEST = "shardMove"
MOVE_MAP = "shardMap"
MOVE_CURRENT = "current"
MOVE_PUBLISH = "publish"


class InvalidDirectory(ValueError):
    """A directory document that breaks §6 (gaps, overlaps, unknown cells, bad fields)."""


def shard(user_id: str, shards: int) -> int:
    """The shard of a user id (§6)."""
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % shards


def is_cell_id(value: object) -> bool:
    return isinstance(value, str) and _CELL_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class ShardRange:
    first: int
    last: int
    cell: str

    def to_wire(self) -> list[Any]:
        return [self.first, self.last, self.cell]


@dataclass(frozen=True)
class ShardMap:
    """Inclusive shard ranges, each owned by one cell, covering 0 … shards-1 exactly once."""

    shards: int
    ranges: tuple[ShardRange, ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.shards) is not int or not 1 <= self.shards <= 2**32:
            raise InvalidDirectory("shards must be an integer from 1 to 2^32")
        ordered = tuple(sorted(self.ranges, key=lambda r: r.first))
        expected = 0
        for entry in ordered:
            if entry.first != expected or entry.last < entry.first:
                raise InvalidDirectory(
                    f"shard ranges must cover 0..{self.shards - 1} with no gap or overlap "
                    f"(at {entry.first}-{entry.last}, expected to start at {expected})"
                )
            if not is_cell_id(entry.cell):
                raise InvalidDirectory(f"{entry.cell!r} is not a cell id")
            expected = entry.last + 1
        if expected != self.shards:
            raise InvalidDirectory(f"shard ranges end at {expected - 1}, not {self.shards - 1}")
        object.__setattr__(self, "ranges", ordered)
        object.__setattr__(self, "_starts", tuple(entry.first for entry in ordered))

    @classmethod
    def even(cls, cells: Sequence[str], shards: int = DEFAULT_SHARDS) -> ShardMap:
        """The shards split into len(cells) contiguous ranges of (nearly) equal size."""
        if not cells:
            raise InvalidDirectory("at least one cell")
        bounds = [shards * i // len(cells) for i in range(len(cells) + 1)]
        return cls(
            shards,
            tuple(
                ShardRange(bounds[i], bounds[i + 1] - 1, cell)
                for i, cell in enumerate(cells)
                if bounds[i + 1] > bounds[i]
            ),
        )

    @classmethod
    def parse(cls, shards: Any, ranges: Any) -> ShardMap:
        if type(ranges) is not list or not ranges:
            raise InvalidDirectory("shardMap must be a non-empty list of [first, last, cell]")
        parsed = []
        for entry in ranges:
            if (
                type(entry) is not list
                or len(entry) != 3
                or type(entry[0]) is not int
                or type(entry[1]) is not int
            ):
                raise InvalidDirectory(f"shardMap entry {entry!r} is not [first, last, cell]")
            parsed.append(ShardRange(entry[0], entry[1], entry[2]))
        return cls(shards, tuple(parsed))

    def cell_of_shard(self, number: int) -> str:
        return self.ranges[bisect_right(self._starts, number) - 1].cell

    def home_of(self, user_id: str) -> str:
        """The home cell of a user id."""
        return self.cell_of_shard(shard(user_id, self.shards))

    def cells(self) -> list[str]:
        return list(dict.fromkeys(entry.cell for entry in self.ranges))

    def to_compact(self) -> str:
        """One line for configuration: "4096:0-2047=c0,2048-4095=c1"."""
        ranges = ",".join(f"{r.first}-{r.last}={r.cell}" for r in self.ranges)
        return f"{self.shards}:{ranges}"

    @classmethod
    def from_compact(cls, text: str) -> ShardMap:
        """The inverse of `to_compact`; InvalidDirectory on anything else."""
        try:
            shards, _, ranges = text.partition(":")
            parsed = []
            for entry in ranges.split(","):
                span, _, cell = entry.partition("=")
                first, _, last = span.partition("-")
                parsed.append(ShardRange(int(first), int(last), cell))
            return cls(int(shards), tuple(parsed))
        except ValueError as error:
            raise InvalidDirectory(f"not a shard map: {text!r} ({error})") from None

    def to_wire(self) -> list[list[Any]]:
        return [entry.to_wire() for entry in self.ranges]

    def owns(self, cell: str, first: int, last: int) -> bool:
        """Whether `cell` owns every shard of first..last (a move's source must)."""
        if not 0 <= first <= last < self.shards:
            return False
        return all(
            entry.cell == cell
            for entry in self.ranges
            if entry.first <= last and first <= entry.last
        )

    def reassigned(self, first: int, last: int, cell: str) -> ShardMap:
        """This map with first..last given to `cell` (a shard move, §6); neighbouring
        ranges of the same cell are joined, so the map stays as short as it can be."""
        pieces: list[ShardRange] = []
        for entry in self.ranges:
            if entry.last < first or last < entry.first:
                pieces.append(entry)
                continue
            if entry.first < first:
                pieces.append(ShardRange(entry.first, first - 1, entry.cell))
            if last < entry.last:
                pieces.append(ShardRange(last + 1, entry.last, entry.cell))
        pieces.append(ShardRange(first, last, cell))
        joined: list[ShardRange] = []
        for entry in sorted(pieces, key=lambda r: r.first):
            if joined and joined[-1].cell == entry.cell and joined[-1].last + 1 == entry.first:
                joined[-1] = ShardRange(joined[-1].first, entry.last, entry.cell)
            else:
                joined.append(entry)
        return ShardMap(self.shards, tuple(joined))


def numbered_copy_url(directory_url: str, version: int) -> str:
    """Where a version of the directory is served forever: the stable URL with
    `directory.json` replaced by `directory/VERSION.json` (§6)."""
    parts = urlsplit(directory_url)
    head, slash, name = parts.path.rpartition("/")
    if name != DIRECTORY_NAME or type(version) is not int or version < 0:
        raise ValueError(f"not a directory URL ({DIRECTORY_NAME}) and version: {directory_url!r}")
    path = f"{head}{slash}{DIRECTORY_COPIES}/{version}.json"
    return urlunsplit(parts._replace(path=path))


@dataclass(frozen=True)
class Directory:
    """The directory document of §6: a version, each cell's URL and epoch, the shard map,
    and the signature of the deployment's directory key.

    `epochs` and `sig` may be absent while the publishers do not write them yet (a v1.1
    document); such a directory never verifies."""

    version: int
    urls: Mapping[str, str]
    shard_map: ShardMap
    epochs: Mapping[str, str] = field(default_factory=dict)
    sig: str | None = None

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version < 0:
            raise InvalidDirectory("version must be a non-negative integer")
        unknown = set(self.shard_map.cells()) - set(self.urls)
        if unknown:
            raise InvalidDirectory(f"the shard map names cells with no url: {sorted(unknown)}")
        for cell, url in self.urls.items():
            if not is_cell_id(cell) or not isinstance(url, str):
                raise InvalidDirectory(f"cell {cell!r} needs an id and a url")
            if not url.startswith(("ws://", "wss://")):
                raise InvalidDirectory(f"the url of cell {cell} is not ws:// or wss://")
            if any(c.isspace() for c in url):
                raise InvalidDirectory(f"the url of cell {cell} contains whitespace")
        for cell, epoch in self.epochs.items():
            if cell not in self.urls:
                raise InvalidDirectory(f"an epoch for {cell!r}, which is not a cell")
            if not is_epoch(epoch):
                raise InvalidDirectory(
                    f"the epoch of cell {cell} is not 1-64 characters of A-Z a-z 0-9 _ . : # -"
                )
        if self.sig is not None and not _is_signature(self.sig):
            raise InvalidDirectory(f"sig must be {SIGNATURE_BYTES} bytes in base64url")

    @property
    def shards(self) -> int:
        return self.shard_map.shards

    def home_of(self, user_id: str) -> str:
        return self.shard_map.home_of(user_id)

    def url_of(self, cell: str) -> str:
        return self.urls[cell]

    def epoch_of(self, cell: str) -> str | None:
        """The cell's current epoch (§7), if the document names it."""
        return self.epochs.get(cell)

    def home_url(self, user_id: str) -> str:
        """The WebSocket URL a user connects to."""
        return self.urls[self.home_of(user_id)]

    # --- signing (§6) ---------------------------------------------------------------------

    def signing_text(self) -> bytes:
        """What the digest is of: "messenger-directory", the version and the shard count,
        one "cellId url epoch" line per cell in ascending byte order of the ids (c10 before
        c2), then one "lo hi cellId" line per range of the shard map, in order.
        InvalidDirectory when a cell has no epoch (a signed directory names each one)."""
        missing = sorted(set(self.urls) - set(self.epochs))
        if missing:
            raise InvalidDirectory(f"cells with no epoch cannot be signed: {missing}")
        lines = [DIRECTORY_SIGNING_PREFIX, str(self.version), str(self.shards)]
        for cell in sorted(self.urls, key=lambda cell: cell.encode()):
            lines.append(f"{cell} {self.urls[cell]} {self.epochs[cell]}")
        lines += [f"{r.first} {r.last} {r.cell}" for r in self.shard_map.ranges]
        return ("\n".join(lines) + "\n").encode()

    def digest(self) -> bytes:
        """The 64-byte SHA-512 digest of the signing text: what the directory key signs, so
        that a key service that signs a few KB at most can sign thousands of cells."""
        return hashlib.sha512(self.signing_text()).digest()

    def sign(self, signing_key: SigningKey) -> Directory:
        """The same directory, signed by the deployment's directory key."""
        return dataclasses.replace(self, sig=sign(signing_key, self.digest()))

    def signed_by(self, sign_digest: Callable[[bytes], bytes]) -> Directory:
        """The same directory, signed by a key that only a service holds: `sign_digest`
        takes the 64-byte digest and gives the 64-byte Ed25519 signature (e.g. KMS)."""
        signature = sign_digest(self.digest())
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes")
        return dataclasses.replace(self, sig=b64url_encode(signature))

    def verifies(self, public_key: str) -> bool:
        """Whether `sig` verifies against the directory's public key (base64url, 32 bytes).
        A directory without a signature, or without every cell's epoch, does not."""
        if self.sig is None or set(self.epochs) != set(self.urls):
            return False
        return verifies(public_key, self.digest(), self.sig)

    # --- the document ---------------------------------------------------------------------

    @classmethod
    def parse(cls, document: Any) -> Directory:
        """A directory from its decoded JSON; InvalidDirectory says what is wrong."""
        if not isinstance(document, dict):
            raise InvalidDirectory("the directory must be a JSON object")
        cells = document.get("cells")
        if not isinstance(cells, dict) or not cells:
            raise InvalidDirectory("cells must be an object of cell id -> {url, epoch}")
        urls, epochs = {}, {}
        for cell, entry in cells.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise InvalidDirectory(f"cell {cell!r} has no url")
            urls[cell] = entry["url"]
            if "epoch" in entry:
                if not isinstance(entry["epoch"], str):
                    raise InvalidDirectory(f"the epoch of cell {cell!r} is not a string")
                epochs[cell] = entry["epoch"]
        ranges = document.get("shardMap")
        shard_map = ShardMap.parse(document.get("shards"), ranges)
        # The signature covers the ranges in the document's order: it must be the one
        # the shard map keeps (ascending), or a valid signature would not verify.
        if [entry.to_wire() for entry in shard_map.ranges] != ranges:
            raise InvalidDirectory("shardMap must list its ranges in ascending order")
        sig = document.get("sig")
        if sig is not None and not isinstance(sig, str):
            raise InvalidDirectory("sig must be a string")
        return cls(document.get("version"), urls, shard_map, epochs, sig)  # type: ignore[arg-type]

    def to_wire(self) -> dict[str, Any]:
        cells: dict[str, Any] = {}
        for cell, url in self.urls.items():
            cells[cell] = {"url": url}
            if cell in self.epochs:
                cells[cell]["epoch"] = self.epochs[cell]
        document: dict[str, Any] = {
            "version": self.version,
            "shards": self.shards,
            "cells": cells,
            "shardMap": self.shard_map.to_wire(),
        }
        if self.sig is not None:
            document["sig"] = self.sig
        return document


def _is_signature(value: object) -> bool:
    return (
        isinstance(value, str) and is_base64url(value) and decoded_length(value) == SIGNATURE_BYTES
    )
