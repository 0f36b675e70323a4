"""Cells and the directory (docs/protocol.md §6): which cell is a user's home.

    directory = Directory.parse(json.loads(text))
    directory.home_of("alice")       # "c1"
    directory.url_of("c1")           # "wss://.../prod"

`shard(user_id)` is the first 4 bytes of SHA-256 of the UTF-8 user id, big-endian,
modulo the number of shards; the shard map's inclusive ranges cover every shard once.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SHARDS = 4096
CELL_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
_CELL_ID = re.compile(CELL_ID_PATTERN)


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


@dataclass(frozen=True)
class Directory:
    """The directory document of §6: a version, each cell's URL, and the shard map."""

    version: int
    urls: Mapping[str, str]
    shard_map: ShardMap

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

    @property
    def shards(self) -> int:
        return self.shard_map.shards

    def home_of(self, user_id: str) -> str:
        return self.shard_map.home_of(user_id)

    def url_of(self, cell: str) -> str:
        return self.urls[cell]

    def home_url(self, user_id: str) -> str:
        """The WebSocket URL a user connects to."""
        return self.urls[self.home_of(user_id)]

    @classmethod
    def parse(cls, document: Any) -> Directory:
        """A directory from its decoded JSON; InvalidDirectory says what is wrong."""
        if not isinstance(document, dict):
            raise InvalidDirectory("the directory must be a JSON object")
        cells = document.get("cells")
        if not isinstance(cells, dict) or not cells:
            raise InvalidDirectory("cells must be an object of cell id -> {url}")
        urls = {}
        for cell, entry in cells.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise InvalidDirectory(f"cell {cell!r} has no url")
            urls[cell] = entry["url"]
        shard_map = ShardMap.parse(document.get("shards"), document.get("shardMap"))
        return cls(document.get("version"), urls, shard_map)  # type: ignore[arg-type]

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shards": self.shards,
            "cells": {cell: {"url": url} for cell, url in self.urls.items()},
            "shardMap": self.shard_map.to_wire(),
        }
