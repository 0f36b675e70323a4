"""`messenger init --link` and `messenger devices` as a person runs them (docs/protocol.md §8):
subprocesses against the local stack, through the CLI's entry point."""

from __future__ import annotations

import pytest

from messenger_protocol.devices import LinkCode
from tests.client.test_cli import Messenger, messenger

__all__ = ["messenger"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_link_a_second_device_chat_from_it_and_remove_it(messenger: Messenger) -> None:
    # Given alice on her phone (device 1), registered by a first connection, and bob
    assert (await messenger("--profile", "phone", "init", "--user", "alice")).code == 0
    assert (await messenger("--profile", "phone", "read")).code == 0
    assert (await messenger("--profile", "bob", "init")).code == 0
    assert (await messenger("--profile", "bob", "read")).code == 0
    # When she makes a profile on her laptop with --link
    made = await messenger("--profile", "laptop", "init", "--link", "--user", "alice")
    assert made.code == 0, made.err
    # Then it shows a link code as text and as a QR code
    [code] = [line for line in made.out.splitlines() if line.startswith("ml1:")]
    assert LinkCode.decode(code).device_id == "laptop"
    assert "▀" in made.out or "█" in made.out
    # When her phone takes the code
    linked = await messenger("--profile", "phone", "devices", "link", code)
    assert linked.code == 0, linked.err
    assert linked.out.splitlines()[1:] == ["1  (account key)  (this device)", "laptop"]
    # Then the laptop sees the same list, and the account key's safety number
    listed = await messenger("--profile", "laptop", "devices")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == ["1  (account key)", "laptop  (this device)"]
    phone_number = (await messenger("--profile", "phone", "fingerprint")).out.split("  ")[1]
    assert phone_number in (await messenger("--profile", "laptop", "fingerprint")).out
    # And a message from bob reaches both, and her answer from the laptop shows on the phone
    assert (await messenger("--profile", "bob", "send", "alice", "hi alice")).code == 0
    for device in ("laptop", "phone"):
        read = await messenger("--profile", device, "read")
        assert "hi alice" in read.out, read.err
    assert (await messenger("--profile", "laptop", "send", "bob", "from my laptop")).code == 0
    assert "from my laptop" in (await messenger("--profile", "bob", "read")).out
    on_phone = await messenger("--profile", "phone", "read")
    assert "alice → bob: from my laptop" in on_phone.out, on_phone
    history = await messenger("--profile", "phone", "history", "bob", "--json")
    lines = history.out.splitlines()
    assert any('"from my laptop"' in line and '"outgoing": true' in line for line in lines), lines
    # When the phone removes the laptop
    removed = await messenger("--profile", "phone", "devices", "remove", "laptop")
    assert removed.code == 0, removed.err
    # Then the laptop can no longer connect
    refused = await messenger("--profile", "laptop", "read")
    assert refused.code == 3, (refused.out, refused.err)


async def test_only_device_one_links_and_bad_codes_are_refused(messenger: Messenger) -> None:
    assert (await messenger("--profile", "phone", "init", "--user", "alice")).code == 0
    made = await messenger("--profile", "laptop", "init", "--link", "--user", "alice")
    [code] = [line for line in made.out.splitlines() if line.startswith("ml1:")]
    # A code for another user, and garbage, are refused before anything is sent
    other = await messenger("--profile", "tablet", "init", "--link", "--user", "carol")
    [carols] = [line for line in other.out.splitlines() if line.startswith("ml1:")]
    refused = await messenger("--profile", "phone", "devices", "link", carols)
    assert refused.code == 1 and "carol" in refused.err
    garbage = await messenger("--profile", "phone", "devices", "link", "ml1:not-json")
    assert garbage.code == 1 and "link code" in garbage.err
    # And --link without --user is a usage error
    assert (await messenger("--profile", "x", "init", "--link")).code == 2
    # And a linked device cannot link another
    assert (await messenger("--profile", "phone", "devices", "link", code)).code == 0
    late = await messenger("--profile", "tablet2", "init", "--link", "--user", "alice")
    [third] = [line for line in late.out.splitlines() if line.startswith("ml1:")]
    by_laptop = await messenger("--profile", "laptop", "devices", "link", third)
    assert by_laptop.code == 1 and "device 1" in by_laptop.err
