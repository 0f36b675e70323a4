"""docs/asyncapi.yaml, generated from this package: `python -m messenger_protocol.asyncapi`.

The document describes the server (the WebSocket API): the frames clients send are
operations it receives, the frames it pushes are operations it sends. Every payload is
the JSON Schema of a frame class of `messenger_protocol.frames`, so the published
contract and the code that reads and writes frames cannot drift apart; a test
regenerates the file and fails if the committed copy differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from messenger_protocol.connect import query_schema
from messenger_protocol.frames import CLIENT_FRAMES, SERVER_FRAMES, ClientFrame, Frame
from messenger_protocol.generated import command_line
from messenger_protocol.names import CLOSE_CODES, ERROR_MEANINGS, Action

CONTRACT_VERSION = "1.2"
CHANNEL = "messenger"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# What a two-way route answers with (the rest answer nothing, or post later).
_REPLIES = {
    Action.SEND_MESSAGE: "ack",
    Action.GET_PRESENCE: "presence",
    Action.GET_KEYS: "keys",
    Action.REGISTER_PUSH: "pushRegistered",
    Action.PING: "pong",
    Action.SET_PRESENCE_VISIBILITY: "presenceVisibility",
    Action.MARK_SEEN: "seenStored",
    Action.SET_BLOCKED: "blocked",
    Action.GET_SETTINGS: "settings",
    Action.SET_DEVICES: "devices",
}


def message_name(frame: type[Frame]) -> str:
    """`client.<action>` or `server.<type>`: unique, though `ack` is both."""
    side = "client" if issubclass(frame, ClientFrame) else "server"
    return f"{side}.{frame.KIND}"


def schema_name(frame: type[Frame]) -> str:
    return frame.__name__


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain JSON data."""
    # Through JSON once: the enums of the package become the plain strings they are.
    return json.loads(json.dumps(_document()))


def _document() -> dict[str, Any]:
    frames: list[type[Frame]] = [*CLIENT_FRAMES.values(), *SERVER_FRAMES.values()]
    schemas = {schema_name(frame): frame.schema() for frame in frames}
    messages = {
        message_name(frame): {
            "name": frame.KIND,
            "title": frame.__name__,
            "summary": getattr(frame, "SUMMARY", "") or frame.__name__,
            "contentType": "application/json",
            "payload": _ref("components", "schemas", schema_name(frame)),
        }
        for frame in frames
    }
    operations: dict[str, Any] = {}
    for action, frame in CLIENT_FRAMES.items():
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": _ref("channels", CHANNEL),
            "summary": frame.SUMMARY,
            "messages": [_ref("channels", CHANNEL, "messages", message_name(frame))],
        }
        reply = _REPLIES.get(action)
        if reply is not None:
            operation["reply"] = {
                "channel": _ref("channels", CHANNEL),
                "messages": [
                    _ref("channels", CHANNEL, "messages", f"server.{reply}"),
                    _ref("channels", CHANNEL, "messages", "server.error"),
                ],
            }
        operations[f"receive.{action.value}"] = operation
    for server_frame in SERVER_FRAMES.values():
        operations[f"send.{server_frame.KIND}"] = {
            "action": "send",
            "channel": _ref("channels", CHANNEL),
            "summary": server_frame.SUMMARY,
            "messages": [_ref("channels", CHANNEL, "messages", message_name(server_frame))],
        }
    codes = "\n".join(f"- `{code.value}`: {meaning}" for code, meaning in ERROR_MEANINGS.items())
    closing = ", ".join(f"`{code.value}` ({close})" for code, close in CLOSE_CODES.items())
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Messenger WebSocket API",
            "version": CONTRACT_VERSION,
            "description": (
                "A no-history, end-to-end encrypted 1:1 messenger on API Gateway WebSockets "
                "(docs/protocol.md, contract v" + CONTRACT_VERSION + "). Generated from the "
                "`messenger_protocol` package; docs/protocol.md says it in words.\n\n"
                "Every frame is a JSON text frame of at most 32 KB. Fields a frame does not "
                "define are ignored. A refused frame is answered by an `error` frame and "
                "changes nothing. Error codes:\n" + codes + "\n\n"
                "When the server closes a connection on its own it first sends an `error` "
                "whose code says why, and closes with the WebSocket code it implies: "
                + closing
                + ". A user may link up to 5 devices (docs/protocol.md §8): each connects "
                "with its own keys (`deviceId`, `aud`), and messages to and from it are "
                "sealed once with a key sealed per device (`copies`, `selfCopies`)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8080",
                "pathname": "/local",
                "protocol": "ws",
                "description": "`messenger local`",
            },
            "aws": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "pathname": "/{stage}",
                "protocol": "wss",
                "description": "A deployed stage (the stack's WebSocketUrl output)",
                "variables": {
                    "apiId": {"description": "the WebSocket API's id"},
                    "region": {"description": "the AWS region", "default": "us-east-1"},
                    "stage": {"enum": ["dev", "prod"], "default": "dev"},
                },
            },
        },
        "channels": {
            CHANNEL: {
                "address": None,
                "title": "One connection",
                "description": "A connection opens with a signed query string (§1); then "
                "the client sends frames with an `action` and the server "
                "sends frames with a `type`.",
                "messages": {name: _ref("components", "messages", name) for name in messages},
                "bindings": {
                    "ws": {"method": "GET", "query": query_schema(), "bindingVersion": "0.1.0"}
                },
            }
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    import yaml  # a development tool's dependency: the functions never import this module

    header = (
        "# Generated by `python -m messenger_protocol.asyncapi` from protocol/"
        "messenger_protocol: do not edit.\n"
    )

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None  # prose stays readable as a block
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    body = yaml.dump(document(), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


main = command_line(
    "messenger_protocol.asyncapi",
    "Write (or check) docs/asyncapi.yaml.",
    DEFAULT_PATH,
    lambda output: {output: render()},
)


if __name__ == "__main__":
    sys.exit(main(None))
