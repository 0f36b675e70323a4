"""How each field of a frame is read, written and described.

A field spec is declared once, on the frame's dataclass attribute (`wire(...)`), and
from it come the reader that refuses a bad value with the first broken rule
(BAD_REQUEST, or TOO_LARGE for an oversize body), the JSON the frame is sent as, and
the field's JSON Schema in docs/asyncapi.yaml.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from messenger_protocol.encoding import (
    CURSOR_RULE,
    DEVICE_ID_RULE,
    EPOCH_RULE,
    ITEM_ID_RULE,
    MESSAGE_ID_RULE,
    USER_ID_RULE,
    decoded_length,
    is_base64url,
    is_cursor,
    is_device_id,
    is_epoch,
    is_item_id,
    is_message_id,
    is_user_id,
)
from messenger_protocol.errors import BadRequest, TooLarge
from messenger_protocol.limits import (
    BASE64URL_PATTERN,
    CURSOR_PATTERN,
    DEVICE_ID_PATTERN,
    EPOCH_PATTERN,
    MAX_BODY_BYTES,
    MAX_IDS_PER_FRAME,
    MAX_ITEM_ID_CHARS,
    MESSAGE_ID_PATTERN,
    USER_ID_PATTERN,
)

Schema = dict[str, Any]
_MISSING: Any = dataclasses.MISSING


class Field(ABC):
    """One field of a frame: its name on the wire and its rule."""

    def __init__(
        self,
        name: str,
        *,
        default: Any = _MISSING,
        nullable: bool = False,
        description: str = "",
        required: bool | None = None,
    ) -> None:
        self.name = name
        self.default = default
        self.nullable = nullable
        self.description = description
        self._required = required

    @property
    def required(self) -> bool:
        """Whether the wire must carry it: when it has no default, unless the spec says
        (a field with a default for builders may still be required on the wire)."""
        return self.default is _MISSING if self._required is None else self._required

    def read(self, document: Mapping[str, Any]) -> Any:
        """The field's value from a decoded frame; BadRequest naming the broken rule."""
        if self.name not in document:
            if self.required:
                raise BadRequest(f"{self.name}: required")
            return self.default
        value = document[self.name]
        if value is None and self.nullable:
            return None
        return self.check(value)

    @abstractmethod
    def check(self, value: Any) -> Any:
        """The value if it keeps the rule (possibly converted), else BadRequest."""

    @abstractmethod
    def value_schema(self) -> Schema:
        """The JSON Schema of a value (null aside)."""

    def dump(self, value: Any) -> Any:
        """The value as JSON carries it."""
        return value

    def schema(self) -> Schema:
        schema = self.value_schema()
        if self.nullable:
            schema = {"oneOf": [schema, {"type": "null"}]}
        if self.description:
            schema = {"description": self.description, **schema}
        return schema


class Text(Field):
    """A non-empty string, at most `max_chars` long."""

    def __init__(self, name: str, *, max_chars: int | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self.max_chars = max_chars

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise BadRequest(f"{self.name}: must be a string")
        if not value:
            raise BadRequest(f"{self.name}: must not be empty")
        if self.max_chars is not None and len(value) > self.max_chars:
            raise BadRequest(f"{self.name}: must be at most {self.max_chars} characters")
        return value

    def value_schema(self) -> Schema:
        schema: Schema = {"type": "string", "minLength": 1}
        if self.max_chars is not None:
            schema["maxLength"] = self.max_chars
        return schema


class Rule:
    """A rule on single values: a test, its words, and its JSON Schema."""

    def __init__(self, valid: Callable[[object], bool], words: str, schema: Schema) -> None:
        self.valid = valid
        self.words = words
        self.schema = schema


USER_ID = Rule(is_user_id, USER_ID_RULE, {"type": "string", "pattern": USER_ID_PATTERN})
MESSAGE_ID = Rule(is_message_id, MESSAGE_ID_RULE, {"type": "string", "pattern": MESSAGE_ID_PATTERN})
ITEM_ID = Rule(
    is_item_id, ITEM_ID_RULE, {"type": "string", "minLength": 1, "maxLength": MAX_ITEM_ID_CHARS}
)
CURSOR = Rule(is_cursor, CURSOR_RULE, {"type": "string", "pattern": CURSOR_PATTERN})
DEVICE_ID = Rule(is_device_id, DEVICE_ID_RULE, {"type": "string", "pattern": DEVICE_ID_PATTERN})
EPOCH = Rule(is_epoch, EPOCH_RULE, {"type": "string", "pattern": EPOCH_PATTERN})


class One(Field):
    """A single value keeping a `Rule`."""

    def __init__(self, name: str, rule: Rule, **options: Any) -> None:
        super().__init__(name, **options)
        self.rule = rule

    def check(self, value: Any) -> Any:
        if not self.rule.valid(value):
            raise BadRequest(f"{self.name}: must be {self.rule.words}")
        return value

    def value_schema(self) -> Schema:
        return dict(self.rule.schema)


class Listing(Field):
    """A JSON array of `min_items` (1) to `max_items` (MAX_IDS_PER_FRAME) values, each
    keeping a `Rule`."""

    def __init__(
        self,
        name: str,
        rule: Rule,
        *,
        min_items: int = 1,
        max_items: int = MAX_IDS_PER_FRAME,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.rule = rule
        self.min_items = min_items
        self.max_items = max_items

    def check(self, value: Any) -> list[Any]:
        if type(value) is not list or not self.min_items <= len(value) <= self.max_items:
            raise BadRequest(
                f"{self.name}: must be a list of {self.min_items} to {self.max_items} items"
            )
        for index, item in enumerate(value):
            if not self.rule.valid(item):
                raise BadRequest(f"{self.name}.{index}: must be {self.rule.words}")
        return value

    def dump(self, value: Any) -> Any:
        return list(value)

    def value_schema(self) -> Schema:
        return {
            "type": "array",
            "minItems": self.min_items,
            "maxItems": self.max_items,
            "items": dict(self.rule.schema),
        }


class Integer(Field):
    def __init__(self, name: str, *, low: int, high: int, **options: Any) -> None:
        super().__init__(name, **options)
        self.low = low
        self.high = high

    def check(self, value: Any) -> int:
        # bool is an int to Python, never to JSON; 1.0 and "1" are not integers either.
        if type(value) is not int or not self.low <= value <= self.high:
            raise BadRequest(f"{self.name}: must be an integer from {self.low} to {self.high}")
        return value

    def value_schema(self) -> Schema:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


class Flag(Field):
    def check(self, value: Any) -> bool:
        if type(value) is not bool:
            raise BadRequest(f"{self.name}: must be true or false")
        return value

    def value_schema(self) -> Schema:
        return {"type": "boolean"}


class Choice(Field):
    """One of the values of a StrEnum; read as the enum member."""

    def __init__(self, name: str, choices: type[StrEnum], **options: Any) -> None:
        super().__init__(name, **options)
        self.choices = choices

    def check(self, value: Any) -> StrEnum:
        if isinstance(value, str):
            for choice in self.choices:
                if choice.value == value:
                    return choice
        words = ", ".join(choice.value for choice in self.choices)
        raise BadRequest(f"{self.name}: must be one of {words}")

    def value_schema(self) -> Schema:
        return {"type": "string", "enum": [choice.value for choice in self.choices]}


class Const(Field):
    """A field whose value is always the same (the ack's `status: "sent"`)."""

    def __init__(self, name: str, value: str, **options: Any) -> None:
        super().__init__(name, default=value, **options)
        self.value = value

    @property
    def required(self) -> bool:
        return True  # always written, and required in the schema

    def check(self, value: Any) -> str:
        if value != self.value:
            raise BadRequest(f"{self.name}: must be {self.value!r}")
        return value

    def value_schema(self) -> Schema:
        return {"type": "string", "const": self.value}


class Ciphertext(Text):
    """A NaCl box in base64url, at most MAX_BODY_BYTES once decoded (§2)."""

    def check(self, value: Any) -> str:
        value = super().check(value)
        if not is_base64url(value):
            raise BadRequest(f"{self.name}: must be base64url without padding")
        if decoded_length(value) > MAX_BODY_BYTES:
            raise TooLarge(f"{self.name} is over {MAX_BODY_BYTES} bytes")
        return value

    def value_schema(self) -> Schema:
        # 4 characters carry 3 bytes: the longest unpadded encoding of MAX_BODY_BYTES.
        return {
            "type": "string",
            "pattern": BASE64URL_PATTERN,
            "minLength": 1,
            "maxLength": -(-MAX_BODY_BYTES * 4 // 3),
            "contentEncoding": "base64url",
        }


class FixedBytes(Text):
    """Exactly `size` bytes in base64url (a box nonce, a public key)."""

    def __init__(self, name: str, size: int, **options: Any) -> None:
        super().__init__(name, **options)
        self.size = size

    def check(self, value: Any) -> str:
        value = super().check(value)
        if not is_base64url(value) or decoded_length(value) != self.size:
            raise BadRequest(f"{self.name}: must be {self.size} bytes in base64url")
        return value

    def value_schema(self) -> Schema:
        chars = -(-self.size * 4 // 3)
        return {
            "type": "string",
            "pattern": BASE64URL_PATTERN,
            "minLength": chars,
            "maxLength": chars,
            "contentEncoding": "base64url",
        }


def read_inside(name: str, record: Any, value: Any) -> Any:
    """`value` read as `record` (a Record subclass); a refusal names the path from `name`."""
    if not isinstance(value, dict):
        raise BadRequest(f"{name}: must be an object")
    try:
        return record.read(value)
    except BadRequest as refused:
        raise BadRequest(f"{name}.{refused.message}") from None


class Records(Field):
    """An array of objects, each read as `record` (a Record subclass)."""

    def __init__(
        self,
        name: str,
        record: Any,
        *,
        min_items: int = 0,
        max_items: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.record = record
        self.min_items = min_items
        self.max_items = max_items

    def check(self, value: Any) -> list[Any]:
        if type(value) is not list or len(value) < self.min_items:
            raise BadRequest(f"{self.name}: must be a list of at least {self.min_items} items")
        if self.max_items is not None and len(value) > self.max_items:
            raise BadRequest(f"{self.name}: must be a list of at most {self.max_items} items")
        return [read_inside(f"{self.name}.{i}", self.record, item) for i, item in enumerate(value)]

    def dump(self, value: Any) -> Any:
        return [item.to_wire() for item in value]

    def value_schema(self) -> Schema:
        schema: Schema = {"type": "array", "minItems": self.min_items}
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        schema["items"] = self.record.schema()
        return schema


class Nested(Field):
    """One object, read as `record` (a Record subclass)."""

    def __init__(self, name: str, record: Any, **options: Any) -> None:
        super().__init__(name, **options)
        self.record = record

    def check(self, value: Any) -> Any:
        return read_inside(self.name, self.record, value)

    def dump(self, value: Any) -> Any:
        return value.to_wire()

    def value_schema(self) -> Schema:
        return dict(self.record.schema())


def wire(spec: Field) -> Any:
    """Declare a frame attribute by its field spec (the default comes with the spec)."""
    if spec.default is _MISSING:
        return dataclasses.field(metadata={"wire": spec})
    return dataclasses.field(default=spec.default, metadata={"wire": spec})
