"""The client's cryptography: the signed connect query (docs/protocol.md §1), NaCl Box (§5),
and a message sealed once for several devices (§8)."""

from __future__ import annotations

import json
from typing import Any

from nacl.bindings import crypto_box_BOXZEROBYTES, crypto_box_ZEROBYTES
from nacl.exceptions import CryptoError
from nacl.public import Box
from nacl.utils import random as random_bytes

from messenger_client.errors import MessageTooLong, UnreadableMessage
from messenger_client.keystore import Identity, PeerKeys
from messenger_client.store import SealedCopy
from messenger_protocol.connect import canonical_endpoint, signed_connect_query, with_query
from messenger_protocol.devices import DeviceList, open_body, seal_for_devices, unwrap_key
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.errors import CannotOpen
from messenger_protocol.frames import MessageFrame, SendMessage
from messenger_protocol.limits import (
    BOX_NONCE_BYTES,
    MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
)

# What Box adds to a plaintext: the 16-byte Poly1305 tag.
BOX_OVERHEAD_BYTES = crypto_box_ZEROBYTES - crypto_box_BOXZEROBYTES


def connect_query(
    identity: Identity, now: float, nonce: str | None = None, aud: str | None = None
) -> dict[str, str]:
    """A freshly signed connect query, public keys included; with `aud` (the endpoint
    connected to) in the v1.2 form, bound to it (docs/protocol.md §1).

    The keys register the user on the first connect; sending them every time is
    allowed (identical keys are accepted) and re-registers us on a server that lost
    its users, as a restarted local stack does.
    """
    keys = identity.public_keys
    return signed_connect_query(
        identity.signing_key,
        identity.user_id,
        now=now,
        nonce=nonce,
        # A linked device's keys are in the signed device list, not registered (§8).
        keys=(keys.sign_key, keys.box_key) if identity.is_primary else None,
        aud=aud,
        device_id=identity.device_id,
    )


def signed_url(server_url: str, identity: Identity, now: float) -> str:
    """The stage URL with a query signed for it (v1.2 `aud`): good once, within the server's
    time window, and at that endpoint only (a relayed copy is refused elsewhere)."""
    aud = canonical_endpoint(server_url.partition("?")[0])
    return with_query(server_url, connect_query(identity, now, aud=aud))


def encode_plaintext(text: str) -> bytes:
    """The plaintext of docs/protocol.md §5, checked to fit in one frame once encrypted."""
    plaintext = json.dumps({"text": text}, ensure_ascii=False, separators=(",", ":")).encode()
    body_bytes = len(plaintext) + BOX_OVERHEAD_BYTES
    if body_bytes > MAX_BODY_BYTES:
        raise MessageTooLong(body_bytes)
    return plaintext


def decode_plaintext(plaintext: bytes) -> str:
    """The text of a decrypted body; UnreadableMessage if it is not our JSON."""
    try:
        document: Any = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UnreadableMessage("the plaintext is not UTF-8 JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("text"), str):
        raise UnreadableMessage("the plaintext has no text")
    text: str = document["text"]
    return text


def seal(identity: Identity, recipient: PeerKeys, plaintext: bytes) -> tuple[str, str]:
    """(body, nonce), base64url: a NaCl Box from us to the recipient, with a fresh nonce."""
    nonce = random_bytes(BOX_NONCE_BYTES)
    box = Box(identity.box_private_key, recipient.box_public_key)
    return b64url_encode(box.encrypt(plaintext, nonce).ciphertext), b64url_encode(nonce)


def send_message_frame(
    identity: Identity,
    recipient: PeerKeys,
    message_id: str,
    text: str,
    sent_at: int,
    recipient_devices: DeviceList | None = None,
    own_devices: DeviceList | None = None,
) -> str:
    """The sendMessage frame (JSON text) carrying `text` to `recipient`, sealed once.

    When either side has linked devices (their verified lists), the body is a SecretBox
    under a fresh key K, boxed for each of the recipient's devices and each of our other
    devices (docs/protocol.md §8); else a Box to the recipient's account key (§5).
    The text is kept as this exact frame until the server acks it: a resend is the
    same frame, byte for byte. MessageTooLong if it would not fit in one frame.
    """
    plaintext = encode_plaintext(text)
    linked = (recipient_devices is not None and recipient_devices.has_linked_devices) or (
        own_devices is not None and own_devices.has_linked_devices
    )
    if linked:
        theirs = recipient_devices or DeviceList.unlinked(
            recipient.user_id, recipient.sign_key, recipient.box_key
        )
        ours = [] if own_devices is None else own_devices.devices
        sealed = seal_for_devices(
            plaintext,
            identity.box_private_key,
            theirs.devices,
            [device for device in ours if device.device_id != identity.device_id],
        )
        message = SendMessage(
            body=sealed.body,
            message_id=message_id,
            to=recipient.user_id,
            nonce=sealed.nonce,
            sent_at=sent_at,
            devices=theirs.version,
            copies=sealed.copies,
            self_devices=own_devices.version if own_devices is not None else 0,
            self_copies=sealed.self_copies,
        )
        body = sealed.body
    else:
        body, nonce = seal(identity, recipient, plaintext)
        message = SendMessage(
            body=body, message_id=message_id, to=recipient.user_id, nonce=nonce, sent_at=sent_at
        )
    frame = message.to_json()
    if len(frame.encode()) > MAX_FRAME_BYTES:
        raise MessageTooLong(len(b64url_decode(body)))
    return frame


def open_sealed(identity: Identity, sender: PeerKeys, body: str, nonce: str) -> bytes:
    """Decrypt a body from the sender whose keys we pinned.

    Box is authenticated: a body that opens proves it was made with the sender's
    private box key (and ours), so this also verifies who sent it.
    """
    try:
        box = Box(identity.box_private_key, sender.box_public_key)
        return box.decrypt(b64url_decode(body), b64url_decode(nonce))
    except (CryptoError, ValueError):
        raise UnreadableMessage(f"does not open with the pinned key of {sender.user_id}") from None


def open_copy(
    identity: Identity, sender_devices: DeviceList, copy: SealedCopy, body: str, nonce: str
) -> bytes:
    """Decrypt a message sealed for several devices (§8): K opens with our device's box key
    and the sending device's boxKey from the sender's verified list, then the body with K."""
    device = sender_devices.device(copy.from_device)
    if device is None:
        raise UnreadableMessage(
            f"sent from a device {copy.from_device!r} not in the verified list of "
            f"{sender_devices.user_id}"
        )
    try:
        message_key = unwrap_key(copy.key, copy.key_nonce, identity.box_private_key, device.box_key)
        return open_body(message_key, body, nonce)
    except CannotOpen as problem:
        raise UnreadableMessage(str(problem)) from None


def sealed_copy(frame: MessageFrame) -> SealedCopy | None:
    """The §8 fields of a `message` frame (None: a Box, §5)."""
    if frame.key is None or frame.key_nonce is None or frame.from_device is None:
        return None
    return SealedCopy(frame.from_device, frame.key, frame.key_nonce, frame.to)
