"""Records: JSON objects whose fields are declared once, with `wire(...)` (fields.py).

Frames are records (frames.py), and so are the objects inside them and the documents of
§8 (devices.py): each reads itself from decoded JSON (BadRequest naming the first bad
field), writes itself back, and describes itself as JSON Schema.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Self

from messenger_protocol.errors import BadRequest
from messenger_protocol.fields import Field, Schema

_SPECS: dict[type, tuple[tuple[str, Field], ...]] = {}


class Record:
    """A JSON object with declared fields (frames, and objects inside them)."""

    @classmethod
    def specs(cls) -> tuple[tuple[str, Field], ...]:
        """(attribute, field spec) in declaration order: the order fields are read."""
        specs = _SPECS.get(cls)
        if specs is None:
            specs = tuple((f.name, f.metadata["wire"]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            _SPECS[cls] = specs
        return specs

    @classmethod
    def read(cls, document: Any) -> Self:
        """The record from decoded JSON; BadRequest (or TooLarge) names the first bad field."""
        if not isinstance(document, dict):
            raise BadRequest("frame must be a JSON object")
        record = cls(**{attr: spec.read(document) for attr, spec in cls.specs()})
        record.check()
        return record

    def check(self) -> None:
        """Rules across fields; BadRequest when broken."""

    def to_wire(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for attr, spec in self.specs():
            value = getattr(self, attr)
            if value is None and not spec.required:
                continue  # optional and absent (a nullable one too: null is for required)
            document[spec.name] = None if value is None else spec.dump(value)
        return document

    @classmethod
    def schema(cls) -> Schema:
        specs = [spec for _, spec in cls.specs()]
        return {
            "type": "object",
            "properties": {spec.name: spec.schema() for spec in specs},
            "required": [spec.name for spec in specs if spec.required],
        }


def to_json(document: dict[str, Any]) -> str:
    """Compact JSON text (UTF-8 on the wire: WebSocket text frames are UTF-8)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
