"""docs/asyncapi.yaml: generated from messenger_protocol, valid AsyncAPI 3.0, and what the
functions really send."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from messenger_protocol import asyncapi
from messenger_protocol.frames import CLIENT_FRAMES, SERVER_FRAMES
from tests.support.schemas import ASYNCAPI, errors_of

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = REPO / "tests" / "protocol" / "validate_asyncapi.mjs"

pytestmark = pytest.mark.unit


def test_the_committed_document_is_what_the_package_generates() -> None:
    # When the document is generated again from the package
    # Then it is byte for byte the committed one (regenerate: python -m messenger_protocol.asyncapi)
    assert ASYNCAPI.read_text() == asyncapi.render()


def test_the_check_mode_fails_on_a_stale_copy(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.render().replace("sendMessage", "sendMassage", 1))
    assert asyncapi.main(["--check", "--output", str(stale)]) == 1
    stale.write_text(asyncapi.render())
    assert asyncapi.main(["--check", "--output", str(stale)]) == 0


def test_every_frame_of_the_package_is_a_message_of_the_document() -> None:
    messages = set(asyncapi.document()["components"]["messages"])
    assert messages == {f"client.{a}" for a in CLIENT_FRAMES} | {
        f"server.{t}" for t in SERVER_FRAMES
    }


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is required (./dev installs the validator with npm)"
    return subprocess.run(
        [node, str(VALIDATOR), str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_the_asyncapi_parser_finds_no_error_in_the_document() -> None:
    # When the AsyncAPI Initiative's parser validates the committed document
    result = _validate(ASYNCAPI)
    # Then it finds no error, and every frame as a message
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["messages"] == len(CLIENT_FRAMES) + len(SERVER_FRAMES)


@pytest.mark.slow
def test_the_validator_catches_a_broken_document(tmp_path: Path) -> None:
    # Given a document whose reply names a message that does not exist
    broken = tmp_path / "asyncapi.yaml"
    text = ASYNCAPI.read_text()
    ref = "$ref: '#/channels/messenger/messages/server.ack'"
    broken.write_text(text.replace(ref, ref.replace("server.ack", "server.nothing"), 1))
    # Then the validator refuses it: the check can fail
    result = _validate(broken)
    assert result.returncode == 1
    assert "invalid-ref" in result.stdout


def test_the_schemas_refuse_what_the_readers_refuse() -> None:
    # A message body one byte too long, an uppercase... the schema and the reader agree
    good = {"type": "pong"}
    assert errors_of("server.pong", good) == []
    assert errors_of(
        "server.ack", {"type": "ack", "messageId": "short", "serverTs": 1, "status": "sent"}
    )
    assert errors_of("client.getPresence", {"action": "getPresence", "userIds": []})
    assert errors_of(
        "client.registerPush", {"action": "registerPush", "platform": "APNS", "token": "zz"}
    )


# What v1.2 added to the frames (docs/protocol.md §1-§3, §6-§8): each is in the document,
# described.
V12_FIELDS = {
    "SendMessage": ["devices", "copies", "selfDevices", "selfCopies"],
    "SetPresenceVisibility": ["add", "remove"],
    "SetBlocked": ["userIds", "add", "remove"],
    "SetDevices": ["version", "devices", "sig"],
    "AckFrame": ["epoch", "dv"],
    "MessageFrame": ["fromDevice", "key", "keyNonce", "to"],
    "SyncDoneFrame": ["dv"],
    "PongFrame": ["dv"],
    "SeenStoredFrame": ["to", "messageIds", "epoch"],
    "BlockedFrame": ["count"],
    "SettingsFrame": ["visibility", "contacts", "blocked"],
    "DevicesFrame": ["userId", "version", "devices", "sig"],
    "KeysFrame": ["devices"],
    "ErrorFrame": ["retryAfter", "devices", "selfDevices"],
}


def test_every_v12_field_is_in_the_document_with_a_description() -> None:
    document = asyncapi.document()
    schemas = document["components"]["schemas"]
    assert document["info"]["version"] == "1.2"
    assert "contract v1.2" in document["info"]["description"]
    for frame, names in V12_FIELDS.items():
        for name in names:
            assert schemas[frame]["properties"][name].get("description"), f"{frame}.{name}"
    for message in ("client.setBlocked", "client.getSettings", "client.setDevices"):
        assert document["components"]["messages"][message]["summary"]
    query = document["channels"]["messenger"]["bindings"]["ws"]["query"]["properties"]
    assert query["deviceId"]["description"] and query["aud"]["description"]
    for code in ("QUEUE_FULL", "STALE_DEVICES", "MOVED", "REPLACED", "TOO_MANY_REFUSED"):
        assert f"`{code}`" in document["info"]["description"]
