"""Linked devices of docs/protocol.md §8: the signed device list, link codes, and a message
sealed once for several devices."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from messenger_protocol.devices import (
    Device,
    DeviceList,
    LinkCode,
    open_body,
    seal_body,
    seal_for_devices,
    unwrap_key,
    wrap_key,
)
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.errors import BadRequest, CannotOpen, InvalidLinkCode
from messenger_protocol.limits import LINK_CODE_PREFIX, WRAPPED_KEY_BYTES

pytestmark = pytest.mark.unit


@dataclasses.dataclass
class Keys:
    """A device's private keys, and the Device its list names."""

    device_id: str
    signing: SigningKey = dataclasses.field(default_factory=SigningKey.generate)
    box: PrivateKey = dataclasses.field(default_factory=PrivateKey.generate)

    @property
    def device(self) -> Device:
        return Device(
            device_id=self.device_id,
            sign_key=b64url_encode(bytes(self.signing.verify_key)),
            box_key=b64url_encode(bytes(self.box.public_key)),
        )


BOB_PHONE, BOB_LAPTOP = Keys("1"), Keys("laptop")
ALICE_PHONE, ALICE_TABLET = Keys("1"), Keys("tablet")


def bobs_list(version: int = 3) -> DeviceList:
    return DeviceList(user_id="bob", version=version, devices=[BOB_PHONE.device, BOB_LAPTOP.device])


def test_the_signed_text_is_the_protocols_line_by_line() -> None:
    phone, laptop = BOB_PHONE.device, BOB_LAPTOP.device
    assert (
        bobs_list().signing_text()
        == (
            f"messenger-devices\nbob\n3\n1 {phone.sign_key} {phone.box_key}\n"
            f"laptop {laptop.sign_key} {laptop.box_key}\n"
        ).encode()
    )


def test_a_list_signed_by_the_account_key_verifies_with_it_and_no_other() -> None:
    # Given bob's list signed by device 1's key (the account key)
    signed = bobs_list().sign(BOB_PHONE.signing)
    account = BOB_PHONE.device.sign_key
    # Then it verifies with the account key, also after travelling as JSON
    assert signed.verifies(account)
    assert DeviceList.read(json.loads(json.dumps(signed.to_wire()))).verifies(account)
    # And not with the linked device's own key, nor unsigned
    assert not signed.verifies(BOB_LAPTOP.device.sign_key)
    assert not bobs_list().verifies(account)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda listing: dataclasses.replace(listing, version=4),
        lambda listing: dataclasses.replace(listing, user_id="bobby"),
        lambda listing: dataclasses.replace(listing, devices=list(reversed(listing.devices))),
        lambda listing: dataclasses.replace(listing, devices=listing.devices[:1]),
        lambda listing: dataclasses.replace(
            listing,
            devices=[listing.devices[0], dataclasses.replace(listing.devices[1], device_id="tv")],
        ),
        lambda listing: dataclasses.replace(
            listing,
            devices=[listing.devices[0], Keys("laptop").device],  # a device's keys swapped
        ),
    ],
)
def test_any_change_to_a_signed_list_breaks_its_signature(tamper) -> None:
    signed = bobs_list().sign(BOB_PHONE.signing)
    assert not tamper(signed).verifies(BOB_PHONE.device.sign_key)


def test_a_garbled_signature_does_not_verify_and_does_not_raise() -> None:
    signed = bobs_list().sign(BOB_PHONE.signing)
    for sig in ("A" * 86, "not base64!", ""):
        assert not dataclasses.replace(signed, sig=sig).verifies(BOB_PHONE.device.sign_key)
    assert not signed.verifies("short")


def test_a_user_who_never_linked_has_version_0_with_the_account_keys() -> None:
    phone = BOB_PHONE.device
    unlinked = DeviceList.unlinked("bob", phone.sign_key, phone.box_key)
    assert (unlinked.version, unlinked.device_ids, unlinked.sig) == (0, ["1"], None)
    assert unlinked.primary == phone and unlinked.has_account_keys(phone.sign_key, phone.box_key)
    assert not unlinked.has_linked_devices and bobs_list().has_linked_devices
    assert not bobs_list().has_account_keys(BOB_LAPTOP.device.sign_key, phone.box_key)
    assert bobs_list().device("laptop") == BOB_LAPTOP.device and bobs_list().device("tv") is None
    # Signed, it is what device 1 sends to say the same again
    assert DeviceList.read(unlinked.sign(BOB_PHONE.signing).to_wire()).verifies(phone.sign_key)


def test_a_list_without_its_signature_does_not_read() -> None:
    with pytest.raises(BadRequest, match="sig: required"):
        DeviceList.read({k: v for k, v in bobs_list().to_wire().items() if k != "sig"})
    with pytest.raises(BadRequest, match="sig: must be"):
        DeviceList.read(bobs_list().to_wire())  # sig: null


# --- link codes ------------------------------------------------------------------------------


def test_a_link_code_carries_the_new_device_and_reads_back_as_pasted() -> None:
    laptop = BOB_LAPTOP.device
    code = LinkCode(
        user_id="bob", device_id="laptop", sign_key=laptop.sign_key, box_key=laptop.box_key
    )
    text = code.encode()
    # Then it is ml1: and base64url of the JSON of the four fields, in the protocol's order
    assert text.startswith(LINK_CODE_PREFIX)
    payload = base64.urlsafe_b64decode(text[4:] + "=" * (-len(text[4:]) % 4))
    assert list(json.loads(payload)) == ["userId", "deviceId", "signKey", "boxKey"]
    # And it reads back, with the whitespace a paste brings, as the device to add
    assert LinkCode.decode(f"  {text}\n") == code
    assert code.device() == laptop


def _code_of(document: object) -> str:
    return LINK_CODE_PREFIX + b64url_encode(json.dumps(document).encode())


GOOD = {"userId": "bob", "deviceId": "laptop", "signKey": "A" * 43, "boxKey": "B" * 43}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "starts with ml1:"),
        ("ML1:" + _code_of(GOOD)[4:], "starts with ml1:"),
        ("ml1:***", "base64url of UTF-8 JSON"),
        ("ml1:" + b64url_encode(b"\xff\xfe"), "base64url of UTF-8 JSON"),
        (_code_of([GOOD]), "must be a JSON object"),
        (_code_of(GOOD | {"deviceId": "1"}), "deviceId: 1 is the account's own device"),
        (_code_of(GOOD | {"deviceId": "Laptop"}), "deviceId: must be a device id"),
        (_code_of(GOOD | {"userId": "Bob"}), "userId: must be a user id"),
        (_code_of(GOOD | {"boxKey": "B" * 42}), "boxKey: must be 32 bytes"),
        (_code_of({k: v for k, v in GOOD.items() if k != "signKey"}), "signKey: required"),
        ("ml1:" + "A" * 2000, "at most 1024 characters"),
    ],
)
def test_a_broken_link_code_is_refused_with_its_reason(text: str, says: str) -> None:
    with pytest.raises(InvalidLinkCode, match=says):
        LinkCode.decode(text)


# --- sealing for devices ------------------------------------------------------------------------


def test_every_device_of_both_sides_opens_the_one_sealed_body() -> None:
    # Given alice (phone and tablet) writing from her phone to bob (phone and laptop)
    sealed = seal_for_devices(
        b'{"text":"hi"}',
        ALICE_PHONE.box,
        [BOB_PHONE.device, BOB_LAPTOP.device],
        [ALICE_TABLET.device],
    )
    assert [c.device for c in sealed.copies] == ["1", "laptop"]
    assert [c.device for c in sealed.self_copies] == ["tablet"]
    sender_box_key = ALICE_PHONE.device.box_key
    # Then each of bob's devices, and alice's tablet, opens its copy of K, then the body
    for keys, copy in [
        (BOB_PHONE, sealed.copies[0]),
        (BOB_LAPTOP, sealed.copies[1]),
        (ALICE_TABLET, sealed.self_copies[0]),
    ]:
        assert len(base64.urlsafe_b64decode(copy.key + "==")) == WRAPPED_KEY_BYTES
        key = unwrap_key(copy.key, copy.key_nonce, keys.box, sender_box_key)
        assert open_body(key, sealed.body, sealed.nonce) == b'{"text":"hi"}'


def test_a_copy_opens_only_for_its_device_and_an_altered_body_not_at_all() -> None:
    key = bytes(range(32))
    copy = wrap_key(key, ALICE_PHONE.box, BOB_LAPTOP.device)
    sender = ALICE_PHONE.device.box_key
    with pytest.raises(CannotOpen):
        unwrap_key(copy.key, copy.key_nonce, BOB_PHONE.box, sender)  # another device of bob
    with pytest.raises(CannotOpen):
        unwrap_key(copy.key, copy.key_nonce, BOB_LAPTOP.box, ALICE_TABLET.device.box_key)
    assert unwrap_key(copy.key, copy.key_nonce, BOB_LAPTOP.box, sender) == key
    body, nonce = seal_body(key, b"secret")
    altered = ("B" if body[0] == "A" else "A") + body[1:]
    with pytest.raises(CannotOpen):
        open_body(key, altered, nonce)
    with pytest.raises(CannotOpen):
        open_body(bytes(32), body, nonce)


def test_fixed_nonces_seal_to_fixed_bytes_and_fresh_ones_never_repeat() -> None:
    key, nonce = bytes(range(32)), bytes(24)
    assert seal_body(key, b"x", nonce) == seal_body(key, b"x", nonce)
    assert seal_body(key, b"x")[1] != seal_body(key, b"x")[1]
    first = wrap_key(key, ALICE_PHONE.box, BOB_PHONE.device, nonce)
    assert first == wrap_key(key, ALICE_PHONE.box, BOB_PHONE.device, nonce)
    assert wrap_key(key, ALICE_PHONE.box, BOB_PHONE.device).key_nonce != first.key_nonce


def test_reading_and_building_frames_never_loads_libsodium() -> None:
    # Given a fresh interpreter that imports every module a frame-only caller imports
    code = (
        "import sys, messenger_protocol.frames, messenger_protocol.devices, "
        "messenger_protocol.connect, messenger_protocol.cells, messenger_protocol.asyncapi; "
        "print(sorted(m for m in sys.modules if m == 'nacl' or m.startswith('nacl.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # Then PyNaCl is not among the loaded modules
    assert result.stdout.strip() == "[]"
