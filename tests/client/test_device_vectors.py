"""The SDK's linked-device cryptography (docs/protocol.md §8) against tests/vectors/v12.json,
the vectors the JavaScript SDK checks too: link codes, device lists verified under the
pinned account key (and refused when they do not verify), and copies opened per device."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from messenger_client import crypto
from messenger_client.devices import link_code, with_device, without_device
from messenger_client.errors import DeviceListRefused, UnreadableMessage
from messenger_client.keystore import Identity, PeerKeys
from messenger_client.pinning import verified_list
from messenger_protocol.devices import DeviceList, LinkCode
from messenger_protocol.encoding import b64url_decode
from messenger_protocol.errors import InvalidLinkCode
from messenger_protocol.frames import MessageFrame, SendMessage
from tests.support.v12_vectors import VECTORS

pytestmark = pytest.mark.unit

V12: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))


def identity(user_id: str, device_id: str) -> Identity:
    entry = next(d for d in V12["devices"][user_id] if d["deviceId"] == device_id)
    return Identity(
        user_id,
        SigningKey(b64url_decode(entry["signSeed"])),
        PrivateKey(b64url_decode(entry["boxSecret"])),
        device_id,
    )


def account(user_id: str) -> PeerKeys:
    return identity(user_id, "1").public_keys


def listing(user_id: str) -> DeviceList:
    document = next(v["document"] for v in V12["deviceLists"] if v["document"]["userId"] == user_id)
    return DeviceList.read(document)


def test_a_linked_device_shows_the_link_code_of_the_vectors() -> None:
    assert link_code(identity("bob", "laptop")) == V12["linkCode"]["code"]


@pytest.mark.parametrize("user_id", ["alice", "bob"])
def test_a_signed_list_verifies_under_the_pinned_account_key(user_id: str) -> None:
    assert verified_list(account(user_id), listing(user_id)) == listing(user_id)


def test_no_list_is_device_one_alone_with_the_account_keys() -> None:
    unlinked = verified_list(account("bob"), None)
    assert (unlinked.version, unlinked.device_ids) == (0, ["1"])
    assert unlinked.has_account_keys(account("bob").sign_key, account("bob").box_key)


@pytest.mark.parametrize("case", V12["refusedDeviceLists"], ids=lambda case: case["why"])
def test_a_list_that_does_not_verify_is_a_key_change(case: dict[str, Any]) -> None:
    with pytest.raises(DeviceListRefused):
        verified_list(account("bob"), DeviceList.read(case["document"]))


def test_another_users_list_is_refused() -> None:
    with pytest.raises(DeviceListRefused):
        verified_list(account("bob"), listing("alice"))


def delivered(copy: dict[str, Any], frame: SendMessage, to: str | None = None) -> MessageFrame:
    """The `message` frame a device gets for its copy, as the server writes it."""
    return MessageFrame(
        id="item-0001",
        message_id=frame.message_id,
        sender="alice",
        body=frame.body,
        nonce=frame.nonce,
        sent_at=frame.sent_at,
        server_ts=frame.sent_at + 5,
        from_device="1",
        key=copy["key"],
        key_nonce=copy["keyNonce"],
        to=to,
    )


def opened(device: Identity, sender_devices: DeviceList, frame: MessageFrame) -> str:
    """What `device` reads from a `message` frame sealed for devices."""
    copy = crypto.sealed_copy(frame)
    assert copy is not None
    plaintext = crypto.open_copy(device, sender_devices, copy, frame.body, frame.nonce)
    return crypto.decode_plaintext(plaintext)


def test_every_device_opens_its_copy_and_no_other() -> None:
    document = json.loads(V12["sealed"]["frame"])
    frame = SendMessage.read(document)
    alices = listing("alice")
    for copy in document["copies"]:
        text = opened(identity("bob", copy["device"]), alices, delivered(copy, frame))
        assert text == V12["sealed"]["text"]
    [own] = document["selfCopies"]
    copy_of_mine = delivered(own, frame, to="bob")
    assert opened(identity("alice", "tablet"), alices, copy_of_mine) == V12["sealed"]["text"]
    # The laptop's copy does not open on bob's device 1, nor from a device not listed
    laptops = next(c for c in document["copies"] if c["device"] == "laptop")
    with pytest.raises(UnreadableMessage):
        opened(identity("bob", "1"), alices, delivered(laptops, frame))
    with pytest.raises(UnreadableMessage):
        opened(identity("bob", "laptop"), listing("bob"), delivered(laptops, frame))


def test_the_sdk_seals_for_every_device_and_each_opens_it() -> None:
    # alice's device 1 writes to bob (two devices), with a copy for her tablet
    alice = identity("alice", "1")
    text = json.loads(
        crypto.send_message_frame(
            alice,
            account("bob"),
            "01J9Z3ABCDEFGHJKMNPQRSTVWY",
            "hello",
            1,
            listing("bob"),
            listing("alice"),
        )
    )
    assert (text["devices"], text["selfDevices"]) == (3, 1)
    assert [c["device"] for c in text["copies"]] == ["1", "laptop"]
    assert [c["device"] for c in text["selfCopies"]] == ["tablet"]
    frame = SendMessage.read(text)
    for user_id, copy in [("bob", c) for c in text["copies"]] + [
        ("alice", c) for c in text["selfCopies"]
    ]:
        message = delivered(copy, frame, to="bob" if user_id == "alice" else None)
        assert opened(identity(user_id, copy["device"]), listing("alice"), message) == "hello"


def test_neither_side_linked_is_the_v11_box() -> None:
    unlinked = verified_list(account("bob"), None)
    document = json.loads(
        crypto.send_message_frame(
            identity("alice", "1"),
            account("bob"),
            "01J9Z3ABCDEFGHJKMNPQRSTVWZ",
            "hi",
            1,
            unlinked,
            verified_list(account("alice"), None),
        )
    )
    assert "copies" not in document and "devices" not in document


def test_device_one_adds_a_code_of_its_own_user_only_and_removes_devices() -> None:
    bobs = listing("bob")
    alices_tablet = LinkCode.decode(link_code(identity("alice", "tablet")))
    with pytest.raises(InvalidLinkCode, match="alice"):
        with_device(bobs, alices_tablet)
    same = LinkCode.decode(V12["linkCode"]["code"])
    assert with_device(bobs, same) is bobs  # linked already
    fewer = without_device(bobs, "laptop")
    assert (fewer.version, fewer.device_ids, fewer.sig) == (4, ["1"], None)
    with pytest.raises(ValueError):
        without_device(bobs, "1")
    with pytest.raises(ValueError):
        without_device(bobs, "tablet")


def test_a_linked_identity_keeps_its_device_id_on_disk(tmp_path: Any) -> None:
    from messenger_client.keystore import Profile

    created = Profile.create("laptop", "bob", home=tmp_path, device_id="laptop")
    loaded = Profile.load("laptop", home=tmp_path)
    assert (loaded.identity.user_id, loaded.identity.device_id) == ("bob", "laptop")
    assert loaded.identity.public_keys == created.identity.public_keys
    assert not loaded.identity.is_primary
    assert Profile.create("phone", "bob", home=tmp_path).identity.is_primary
    with pytest.raises(ValueError):
        Profile.create("bad", "bob", home=tmp_path, device_id="Not A Device")
