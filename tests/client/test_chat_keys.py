"""`messenger chat` when a peer's keys change: a warning that stays, held messages shown
after `/trust`, and typed text kept (pilot, against two local stacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from messenger_client.chat import ChatApp, MessageView
from messenger_client.client import MessengerClient
from messenger_client.keystore import Profile
from messenger_local import EmbeddedAws, LocalStack
from tests.client.conftest import FAST, Clients
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


def shown(app: ChatApp, widget_id: str) -> str:
    return str(app.query_one(widget_id, Static).content)


def conversation(app: ChatApp) -> list[str]:
    return [str(view.content) for view in app.query(MessageView)]


def notices(app: ChatApp) -> list[str]:
    return [str(notice.content) for notice in app.query(".keychange").results(Static)]


async def test_a_key_change_stays_on_screen_and_held_messages_show_after_trust(
    shared_aws: EmbeddedAws,
    clients: Clients,
    tmp_path: Path,
) -> None:
    # Given alice pinned bob's keys, then "bob" comes back with new keys
    async with LocalStack(aws=shared_aws) as first:
        await clients.open("bob", first.ws_url)
        alice = await clients.open("alice", first.ws_url)
        await alice.send_and_wait("bob", "hi bob")
        await clients.close_all()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    async with (
        LocalStack(aws=shared_aws) as second,
        MessengerClient(second.ws_url, Profile.create("bob", home=elsewhere), settings=FAST) as bob,
    ):
        await bob.wait_synced()
        alice = await clients.open("alice", second.ws_url)
        app = ChatApp(alice, "bob")
        async with app.run_test(size=(140, 40)) as pilot:
            # When the new bob writes
            await bob.send_and_wait("alice", "new keys, same bob")
            # Then the header and the transcript say so, with both numbers, and stay
            await until(lambda: "held until you verify" in shown(app, "#keys"))
            header = shown(app, "#keys")
            assert app.query_one("#keys").has_class("shown")
            assert (alice.fingerprint("bob") or "?") in header
            assert (bob.fingerprint() or "") in header
            assert any("1 message from bob is held" in line for line in notices(app))
            assert not any("new keys" in line for line in conversation(app))
            # When alice types to bob, Then her text stays in the box, marked unsent
            await pilot.click("#input")
            await pilot.press(*"are you really bob?", "enter")
            box = app.query_one("#input", Input)
            await until(lambda: box.has_class("unsent"))
            assert box.value == "are you really bob?"
            await pilot.pause(1.0)
            assert "bob's safety number changed" in shown(app, "#keys")  # still there
            # When alice has compared the numbers and trusts the new one
            box.value = f"/trust {bob.fingerprint()}"
            await pilot.press("enter")
            # Then the held message shows, in order, and the warning goes
            await until(lambda: any("new keys, same bob" in line for line in conversation(app)))
            lines = conversation(app)
            assert "you: hi bob" in lines[0] and lines[1].endswith("bob: new keys, same bob")
            await until(lambda: not app.query_one("#keys").has_class("shown"))
            assert notices(app) == []
            assert alice.held() == []
