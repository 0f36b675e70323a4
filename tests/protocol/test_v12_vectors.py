"""The v1.2 vectors (tests/vectors/v12.json) are what messenger_protocol computes, and each
one checks out on the receiving side: what the JavaScript SDK must compute byte for byte."""

from __future__ import annotations

import json

import pytest
from nacl.public import PrivateKey

from messenger_protocol.cells import Directory, numbered_copy_url
from messenger_protocol.connect import ConnectQuery, canonical_endpoint
from messenger_protocol.devices import DeviceList, LinkCode, open_body, unwrap_key
from messenger_protocol.encoding import b64url_decode
from messenger_protocol.frames import SendMessage
from tests.support.v12_vectors import VECTORS, compute, render

pytestmark = pytest.mark.unit

VECTOR = compute()


def test_given_the_protocol_package_then_it_computes_the_committed_vectors() -> None:
    # Regenerate after a deliberate change: python -m tests.support.v12_vectors
    assert VECTORS.read_text(encoding="utf-8") == render()


def test_given_the_device_1_seeds_then_they_are_the_crypto_vectors_identities() -> None:
    crypto = json.loads((VECTORS.parent / "crypto.json").read_text(encoding="utf-8"))
    for identity in crypto["identities"]:
        primary = VECTOR["devices"][identity["userId"]][0]
        assert (primary["deviceId"], primary["signKey"], primary["boxKey"]) == (
            "1",
            identity["signKey"],
            identity["boxKey"],
        )


def test_given_the_connect_vectors_then_each_verifies_for_its_own_device_only() -> None:
    connect = VECTOR["connect"]
    keys = {device["deviceId"]: device["signKey"] for device in VECTOR["devices"]["alice"]}
    assert connect["aud"] == canonical_endpoint(connect["serverUrl"])
    for entry in connect["devices"]:
        query = ConnectQuery.parse(entry["query"])
        assert query.message.decode() == entry["message"]
        assert query.aud == connect["aud"] and query.device_id == entry["deviceId"]
        assert [query.verifies(key) for key in keys.values()] == [
            device_id == entry["deviceId"] for device_id in keys
        ]
        assert entry["url"].startswith(connect["aud"] + "?")


def test_given_the_endpoint_vectors_then_each_is_canonical_already() -> None:
    for entry in VECTOR["endpoints"]:
        assert canonical_endpoint(entry["endpoint"]) == entry["endpoint"], entry


def test_given_the_device_list_vectors_then_each_verifies_with_its_account_key() -> None:
    for entry in VECTOR["deviceLists"]:
        listing = DeviceList.read(entry["document"])
        account = VECTOR["devices"][listing.user_id][0]["signKey"]
        assert listing.signing_text().decode() == entry["signingText"]
        assert listing.verifies(account) and listing.has_account_keys(
            account, VECTOR["devices"][listing.user_id][0]["boxKey"]
        )


def test_given_the_link_code_then_it_reads_as_the_device_bobs_list_holds() -> None:
    link = LinkCode.decode(VECTOR["linkCode"]["code"])
    assert link.to_wire() == VECTOR["linkCode"]["fields"]
    bobs = DeviceList.read(VECTOR["deviceLists"][0]["document"])
    assert bobs.device(link.device_id) == link.device()


def test_given_the_directory_vector_then_its_digest_and_signature_hold() -> None:
    vector = VECTOR["directory"]
    directory = Directory.parse(vector["document"])
    assert directory.signing_text().decode() == vector["signingText"]
    assert b64url_decode(vector["digest"]) == directory.digest()
    assert directory.verifies(vector["publicKey"])
    # c10 sorts before c2 in the signed text (byte order), whatever the document's order
    lines = vector["signingText"].splitlines()
    assert [line.split()[0] for line in lines[3:7]] == ["c0", "c1", "c10", "c2"]
    assert numbered_copy_url(vector["url"], directory.version) == vector["numberedCopyUrl"]


def test_given_the_refused_directory_vectors_then_none_verifies_against_the_key() -> None:
    # Given the deployment's key and documents unsigned, signed by another key, or changed
    # after signing (a spoofed url, version or epoch)
    vector = VECTOR["directory"]
    assert len(vector["refused"]) >= 5
    for refused in vector["refused"]:
        # Then each still reads as a directory, and none verifies
        assert not Directory.parse(refused["document"]).verifies(vector["publicKey"]), refused[
            "why"
        ]


def test_given_the_sealed_vector_then_every_device_of_both_sides_reads_the_text() -> None:
    sealed = VECTOR["sealed"]
    frame = SendMessage.read(json.loads(sealed["frame"]))
    sender = VECTOR["devices"]["alice"][0]
    assert frame.devices == 3 and frame.self_devices == 1
    readers = {("bob", copy.device): copy for copy in frame.copies or []} | {
        ("alice", copy.device): copy for copy in frame.self_copies or []
    }
    assert set(readers) == {("bob", "1"), ("bob", "laptop"), ("alice", "tablet")}
    for (user, device_id), copy in readers.items():
        device = next(d for d in VECTOR["devices"][user] if d["deviceId"] == device_id)
        own = PrivateKey(b64url_decode(device["boxSecret"]))
        key = unwrap_key(copy.key, copy.key_nonce, own, sender["boxKey"])
        assert key == b64url_decode(sealed["messageKey"])
        plaintext = open_body(key, frame.body, frame.nonce)
        assert plaintext == b64url_decode(sealed["plaintext"])
        assert json.loads(plaintext) == {"text": sealed["text"]}
