"""Shared test vectors of contract v1.2, from fixed seeds, for the other languages.

`tests/vectors/v12.json` is this module's output (as `crypto.json` is
tests/support/crypto_vectors.py's): tests/protocol/test_v12_vectors.py fails when the file
and `messenger_protocol` disagree, and the JavaScript SDK proves with it that it computes
the same bytes: the bound connect message, signature and URL (§1), canonical endpoints,
the device list's signing text and signature and a link code (§8), the directory's signing
text, digest and signature, its numbered copy and documents a client must refuse (§6), and
a message sealed for devices (body, copies, the whole frame) with its every device opening
it. Regenerate after a deliberate change with `.venv/bin/python -m tests.support.v12_vectors`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from messenger_protocol.cells import Directory, ShardMap, numbered_copy_url
from messenger_protocol.connect import (
    bound_connect_message,
    canonical_endpoint,
    signed_connect_query,
    with_query,
)
from messenger_protocol.devices import Device, DeviceList, LinkCode, seal_body, wrap_key
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.frames import SendMessage

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "v12.json"
CONNECT_NOW = 1_764_190_000.9  # the query carries whole seconds
CONNECT_NONCE = "vector-nonce-0123456789"
AUD_URL = "WSS://A1B2.execute-api.us-east-1.amazonaws.com:443/prod/"
ENDPOINTS = [
    AUD_URL,
    "wss://a1b2.execute-api.us-east-1.amazonaws.com/prod",
    "ws://127.0.0.1:8080/c0/",
    "ws://127.0.0.1:80/local",
    "ws://localhost:443/local",
    "wss://h:80/p?userId=alice#x",
    "ws://[::1]:8080/c0",
    "wss://h/",
]
DIRECTORY_URL = "https://directory.example.test/prod/directory.json"
MESSAGE_ID = "01J9Z3ABCDEFGHJKMNPQRSTVWX"
SENT_AT = 1_764_190_000_123
TEXT = "to every device ✓"


def _seed(first: int) -> bytes:
    return bytes((first + i) % 256 for i in range(32))


def _device(device_id: str, first: int) -> dict[str, Any]:
    """A device's fixed secrets and public keys (seeds `first`.. and `first + 32`..)."""
    signing, box = SigningKey(_seed(first)), PrivateKey(_seed(first + 32))
    return {
        "deviceId": device_id,
        "signSeed": b64url_encode(bytes(signing)),
        "boxSecret": b64url_encode(bytes(box)),
        "signKey": b64url_encode(bytes(signing.verify_key)),
        "boxKey": b64url_encode(bytes(box.public_key)),
    }


def _keys(entry: dict[str, Any]) -> tuple[SigningKey, PrivateKey, Device]:
    device = Device(device_id=entry["deviceId"], sign_key=entry["signKey"], box_key=entry["boxKey"])
    return (
        SigningKey(b64url_decode(entry["signSeed"])),
        PrivateKey(b64url_decode(entry["boxSecret"])),
        device,
    )


def compute() -> dict[str, Any]:
    # alice's and bob's device 1 have crypto.json's seeds: their keys are the account keys.
    alice = {"1": _device("1", 0), "tablet": _device("tablet", 160)}
    bob = {"1": _device("1", 100), "laptop": _device("laptop", 200)}
    alice_signing, alice_box, alice_phone = _keys(alice["1"])
    tablet_signing, _, tablet = _keys(alice["tablet"])
    bob_signing, _, bob_phone = _keys(bob["1"])
    _, _, laptop = _keys(bob["laptop"])

    aud = canonical_endpoint(AUD_URL)
    connects = []
    for device_id, signing in (("1", alice_signing), ("tablet", tablet_signing)):
        query = signed_connect_query(
            signing, "alice", now=CONNECT_NOW, nonce=CONNECT_NONCE, aud=aud, device_id=device_id
        )
        connects.append(
            {
                "deviceId": device_id,
                "message": bound_connect_message(
                    "alice", device_id, query["ts"], CONNECT_NONCE, aud
                ).decode(),
                "query": query,
                "url": with_query(aud, query),
            }
        )

    bobs = DeviceList(user_id="bob", version=3, devices=[bob_phone, laptop]).sign(bob_signing)
    alices = DeviceList(user_id="alice", version=1, devices=[alice_phone, tablet]).sign(
        alice_signing
    )
    link = LinkCode(
        user_id="bob", device_id="laptop", sign_key=laptop.sign_key, box_key=laptop.box_key
    )

    directory_key = SigningKey(_seed(50))
    urls = {cell: f"wss://{cell}.example.test/prod" for cell in ("c0", "c1", "c2", "c10")}
    epochs = {"c0": "us-east-1#1", "c1": "eu-west-1#2", "c2": "us-west-2#1", "c10": "ap-south-1#1"}
    directory = Directory(7, urls, ShardMap.even(["c0", "c1", "c2", "c10"]), epochs)
    signed_directory = directory.sign(directory_key)
    refused_directories = _refused_directories(signed_directory, directory)

    # alice's phone writes to bob (phone, laptop), with a copy for her tablet.
    message_key = _seed(220)
    plaintext = json.dumps({"text": TEXT}, separators=(",", ":"), ensure_ascii=False).encode()
    body, nonce = seal_body(message_key, plaintext, bytes(range(24)))
    copies = [
        wrap_key(message_key, alice_box, device, bytes(range(i, i + 24)))
        for i, device in ((30, bob_phone), (60, laptop))
    ]
    self_copies = [wrap_key(message_key, alice_box, tablet, bytes(range(90, 114)))]
    frame = SendMessage(
        body=body,
        message_id=MESSAGE_ID,
        to="bob",
        nonce=nonce,
        sent_at=SENT_AT,
        devices=bobs.version,
        copies=copies,
        self_devices=alices.version,
        self_copies=self_copies,
    )
    return {
        "comment": (
            "Generated by tests/support/v12_vectors.py from messenger_protocol: do not edit."
        ),
        "devices": {"alice": list(alice.values()), "bob": list(bob.values())},
        "connect": {
            "nowMs": int(CONNECT_NOW * 1000),
            "nonce": CONNECT_NONCE,
            "serverUrl": AUD_URL,
            "aud": aud,
            "devices": connects,
        },
        "endpoints": [{"url": url, "endpoint": canonical_endpoint(url)} for url in ENDPOINTS],
        "deviceLists": [
            {"signingText": listing.signing_text().decode(), "document": listing.to_wire()}
            for listing in (bobs, alices)
        ],
        # Lists a client refuses under bob's pinned account key (a key change, §8).
        "refusedDeviceLists": [
            {"why": why, "document": listing.to_wire()}
            for why, listing in _refused_lists(bobs, bob_signing, laptop, tablet)
        ],
        "linkCode": {"fields": link.to_wire(), "code": link.encode()},
        "directory": {
            "signSeed": b64url_encode(bytes(directory_key)),
            "publicKey": b64url_encode(bytes(directory_key.verify_key)),
            "signingText": directory.signing_text().decode(),
            "digest": b64url_encode(directory.digest()),
            "document": signed_directory.to_wire(),
            "url": DIRECTORY_URL,
            "numberedCopyUrl": numbered_copy_url(DIRECTORY_URL, directory.version),
            "refused": refused_directories,
        },
        "sealed": {
            "from": "alice",
            "fromDevice": "1",
            "text": TEXT,
            "plaintext": b64url_encode(plaintext),
            "messageKey": b64url_encode(message_key),
            "frame": frame.to_json(),
        },
    }


def _refused_lists(
    bobs: DeviceList, bob_signing: SigningKey, laptop: Device, stranger: Device
) -> list[tuple[str, DeviceList]]:
    """bob's list altered after signing, signed by a linked device's key instead of the
    account key, and signed by the account key with device 1 not the account keys."""
    laptop_signing, _, _ = _keys(_device("laptop", 200))
    swapped = Device(device_id="1", sign_key=stranger.sign_key, box_key=stranger.box_key)
    return [
        ("altered after signing", dataclasses.replace(bobs, version=bobs.version + 1)),
        ("not signed by the account key", bobs.sign(laptop_signing)),
        (
            "device 1 is not the account",
            DeviceList(user_id="bob", version=4, devices=[swapped, laptop]).sign(bob_signing),
        ),
    ]


def _refused_directories(signed: Directory, unsigned: Directory) -> list[dict[str, Any]]:
    """Documents a client given the directory key must refuse (§6), each saying why."""
    spoofed_url = signed.to_wire()
    spoofed_url["cells"]["c1"]["url"] = "wss://c1.attacker.example/prod"
    spoofed_version = signed.to_wire()
    spoofed_version["version"] = 10**15
    spoofed_epoch = signed.to_wire()
    spoofed_epoch["cells"]["c0"]["epoch"] = "us-east-1#2"
    return [
        {"why": "unsigned", "document": unsigned.to_wire()},
        {
            "why": "signed by another key",
            "document": unsigned.sign(SigningKey(_seed(51))).to_wire(),
        },
        {"why": "a cell's url changed after signing", "document": spoofed_url},
        {"why": "the version changed after signing", "document": spoofed_version},
        {"why": "a cell's epoch changed after signing", "document": spoofed_epoch},
    ]


def render() -> str:
    return json.dumps(compute(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VECTORS.write_text(render(), encoding="utf-8")
    print(f"wrote {VECTORS}")
