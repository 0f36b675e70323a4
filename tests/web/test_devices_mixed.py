"""One person on three kinds of device at once (docs/protocol.md §8): the CLI (device 1),
a second CLI profile and the web app in Chromium, linked to each other by their `ml1:`
codes, with a peer in the other cell of a two-cell local stack.

Every message reaches every device of the recipient and the sender's other devices once
and in order; `delivered` comes with the first device's ack, `seen` from any device; the
user is online while any one device is connected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from messenger_local import LocalStack
from messenger_protocol.devices import LinkCode
from tests.support.stack_fixtures import cells_stack
from tests.support.waiting import eventually
from tests.web.pages import Cli, WebUser

__all__ = ["cells_stack"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FROM_BOB = ("one, from bob", "two, from bob", "three, from bob")


def peer_elsewhere(stack: LocalStack, user_id: str) -> str:
    """A user id whose home is not `user_id`'s cell."""
    home = stack.home_of(user_id)
    return next(name for name in (f"bob{n}" for n in range(100)) if stack.home_of(name) != home)


def texts_in(read_out: str, texts: tuple[str, ...]) -> list[str]:
    """The lines of a `read` that carry one of `texts`, in the order printed, each without
    its time."""
    return [
        line.split("  ", 1)[-1]
        for line in read_out.splitlines()
        if any(text in line for text in texts)
    ]


async def history(cli: Cli, where: tuple[str, ...], profile: str, peer: str) -> list[Any]:
    out = await cli.ok("--profile", profile, *where, "history", peer, "--json")
    return [json.loads(line) for line in out.splitlines()]


async def status_of(cli: Cli, where: tuple[str, ...], profile: str, peer: str, text: str) -> str:
    [message] = [m for m in await history(cli, where, profile, peer) if m["text"] == text]
    return str(message["status"])


async def test_a_cli_a_second_cli_and_a_browser_as_one_user_with_a_peer_in_another_cell(
    browser: Browser, cells_stack: LocalStack, tmp_path: Path
) -> None:
    home = tmp_path / "messenger-home"
    home.mkdir(mode=0o700)
    cli = Cli(home, "ws://127.0.0.1:9/nowhere")  # never used: --directory beats it
    where = ("--directory", cells_stack.directory_url)
    site = cells_stack.directory_url.removesuffix("directory.json")
    bob = peer_elsewhere(cells_stack, "alice")
    assert cells_stack.home_of(bob) != cells_stack.home_of("alice")

    # Given alice on her phone (device 1, the CLI), showing her presence to everyone, and
    # bob in the other cell
    await cli.ok("--profile", "phone", *where, "init", "--user", "alice")
    await cli.ok("--profile", "phone", *where, "read")
    await cli.ok("--profile", "phone", *where, "visibility", "everyone")
    await cli.ok("--profile", bob, *where, "init", "--user", bob)
    await cli.ok("--profile", bob, *where, "read")

    # When her laptop (a second CLI profile) shows a link code and the phone takes it
    made = await cli.ok("--profile", "laptop", *where, "init", "--link", "--user", "alice")
    [laptop_code] = [line for line in made.splitlines() if line.startswith("ml1:")]
    await cli.ok("--profile", "phone", *where, "devices", "link", laptop_code)

    # And her browser shows one (the web app's code, read by the CLI) and is linked too
    web = await WebUser.open(browser, site)
    web_open = True
    try:
        await web.page.get_by_text("Link this browser to your account", exact=True).click()
        await web.page.get_by_label("The account to join (its id)").fill("alice")
        await web.page.get_by_label("A name for this browser").fill("browser")
        await web.page.get_by_role("button", name="Show my link code").click()
        await expect(web.page.locator("#link-code")).to_contain_text("ml1:")
        web_code = await web.page.locator("#link-code").text_content()
        assert web_code is not None and LinkCode.decode(web_code).device_id == "browser"
        linked = await cli.ok("--profile", "phone", *where, "devices", "link", web_code)
        assert linked.splitlines()[1:] == [
            "1  (account key)  (this device)",
            "laptop",
            "browser",
        ], linked
        await web.page.get_by_role("button", name="It is linked: connect").click()
        await expect(web.page.locator("#me")).to_contain_text("You are alice (browser)")

        # Then every device lists the same three, and shows the account key's safety number
        listed = await cli.ok("--profile", "laptop", *where, "devices")
        assert listed.splitlines() == ["1  (account key)", "laptop  (this device)", "browser"]
        number = (await cli.ok("--profile", "phone", *where, "fingerprint")).split("  ")[1]
        assert number in await cli.ok("--profile", "laptop", *where, "fingerprint")

        # And bob sees alice online while only her browser is connected
        assert (await cli.ok("--profile", bob, *where, "presence", "alice")).startswith(
            "alice  online"
        )

        # When bob writes three messages while her CLIs are not running
        for text in FROM_BOB:
            await cli.ok("--profile", bob, *where, "send", "alice", text)

        # Then they are `delivered` as soon as the first device (the browser) has them,
        # before either CLI ran and before anyone saw them
        async def delivered_to_bob() -> bool:
            await cli.ok("--profile", bob, *where, "read")
            statuses = [await status_of(cli, where, bob, "alice", text) for text in FROM_BOB]
            return statuses == ["delivered"] * 3

        await eventually(delivered_to_bob, timeout=20)

        # And each of her three devices shows each of them once, in the order sent
        for device in ("phone", "laptop"):
            read = await cli.ok("--profile", device, *where, "read")
            assert texts_in(read, FROM_BOB) == [f"{bob}: {text}" for text in FROM_BOB], read
            again = await cli.ok("--profile", device, *where, "read")
            assert texts_in(again, FROM_BOB) == [], "nothing is delivered twice"
        await web.open_chat(bob)
        for text in FROM_BOB:
            await expect(web.message(text)).to_have_count(1)
        shown = await web.log.get_by_role("listitem").all_text_contents()
        assert [n for text in FROM_BOB for n, item in enumerate(shown) if text in item] == sorted(
            n for text in FROM_BOB for n, item in enumerate(shown) if text in item
        ), shown

        # When her laptop marks them seen
        await cli.ok("--profile", "laptop", *where, "read", "--seen")

        # Then bob sees `seen` (one device's mark is the user's)
        async def seen_by_bob() -> bool:
            await cli.ok("--profile", bob, *where, "read")
            statuses = [await status_of(cli, where, bob, "alice", text) for text in FROM_BOB]
            return statuses == ["seen"] * 3

        await eventually(seen_by_bob, timeout=20)

        # When she answers from the laptop, then from the browser
        await cli.ok("--profile", "laptop", *where, "send", bob, "from the laptop")
        await web.type_and_send("from the browser")
        await expect(web.mark_of("from the browser", "sent")).to_be_visible()

        # Then bob gets both, once, in order
        read = await cli.ok("--profile", bob, *where, "read", "--seen")
        mine = ("from the laptop", "from the browser")
        assert texts_in(read, mine) == [f"alice: {text}" for text in mine], read

        # And each of her other devices shows them as hers, once, in order, with bob's
        # `seen` (the receipts reach every device of the sender)
        await expect(web.message("from the laptop")).to_have_count(1)
        await expect(web.message("from the laptop")).to_have_class("mine")
        await expect(web.mark_of("from the browser", "seen")).to_be_visible()
        phone_read = await cli.ok("--profile", "phone", *where, "read")
        assert texts_in(phone_read, mine) == [f"alice → {bob}: {text}" for text in mine]
        laptop_read = await cli.ok("--profile", "laptop", *where, "read")
        assert texts_in(laptop_read, mine) == [f"alice → {bob}: from the browser"], laptop_read
        for text in mine:
            assert await status_of(cli, where, "phone", bob, text) == "seen"
        phone_history = await history(cli, where, "phone", bob)
        assert [m["text"] for m in phone_history] == [*FROM_BOB, *mine]
        assert [m["outgoing"] for m in phone_history] == [False] * 3 + [True] * 2

        # When the browser closes, no device of hers is online
        await web.close()
        web_open = False

        async def bob_sees(state: str) -> bool:
            shown = await cli.ok("--profile", bob, *where, "presence", "alice")
            return shown.startswith(f"alice  {state}")

        await eventually(lambda: bob_sees("offline"), timeout=20)

        # And while her laptop watches for messages, she is online again
        watching = await cli.start("--profile", "laptop", *where, "read", "--watch")
        try:
            await eventually(lambda: bob_sees("online"), timeout=20)
        finally:
            watching.terminate()
            await watching.wait()
        await eventually(lambda: bob_sees("offline"), timeout=20)
    finally:
        if web_open:
            await web.close()
