"""`messenger chat`, driven for real with textual's pilot against the local stack."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from messenger_client.chat import ChatApp, MessageView
from messenger_client.events import MessageAdded, StatusChanged
from messenger_client.store import MessageStatus
from tests.client.conftest import VISIBLE, MakeClient
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


def shown(app: ChatApp, widget_id: str) -> str:
    return str(app.query_one(widget_id, Static).content)


def conversation(app: ChatApp) -> list[str]:
    return [str(view.content) for view in app.query(MessageView)]


async def test_a_typed_message_arrives_on_the_other_side_and_its_marks_update_live(
    client: MakeClient,
) -> None:
    # Given alice in the chat with bob, and bob online (showing it to everyone)
    alice, bob = await client("alice"), await client("bob", settings=VISIBLE)
    app = ChatApp(alice, "bob")
    async with app.run_test(size=(100, 30)) as pilot, bob.events() as bob_events:
        await until(lambda: "● online" in shown(app, "#peer"))
        # When alice types a message and presses Enter
        await pilot.click("#input")
        await pilot.press(*"hello from the chat")
        await pilot.press("enter")
        # Then bob's client stores it
        received = (await bob_events.next_of(MessageAdded)).message
        assert (received.sender, received.text) == ("alice", "hello from the chat")
        assert app.query_one("#input", Input).value == ""
        # And alice's screen shows it delivered, then seen once bob reads it
        view = app.message_view("alice", received.message_id)
        assert view is not None
        await until(lambda: str(view.content).endswith("✓✓"))
        await bob.mark_seen("alice")
        await until(lambda: str(view.content).endswith("✓✓ seen"))
        # When bob answers, Then alice sees it below hers, and bob learns she saw it
        reply = await bob.send_and_wait("alice", "hello alice")
        await until(lambda: len(conversation(app)) == 2)
        assert conversation(app)[1].endswith("bob: hello alice")
        assert "you: hello from the chat" in conversation(app)[0]
        seen = await bob_events.next_of(StatusChanged, lambda e: e.status == MessageStatus.SEEN)
        assert seen.message_ids == (reply.message_id,)
        # When bob leaves, Then alice sees when he was last seen
        await bob.close()
        await until(lambda: "last seen" in shown(app, "#peer"))


async def test_the_chat_shows_the_history_in_order_and_a_banner_while_offline(
    client: MakeClient,
) -> None:
    # Given a conversation alice and bob had, then alice offline (no server there)
    alice, bob = await client("alice"), await client("bob")
    await alice.send_and_wait("bob", "first")
    await bob.send_and_wait("alice", "second")
    await until(lambda: len(alice.history("bob")) == 2)
    await alice.close()
    offline = await client("alice", url="ws://127.0.0.1:9/local", wait=False)
    app = ChatApp(offline, "bob")
    async with app.run_test(size=(100, 30)) as pilot:
        # Then the history is there, in order, and a banner says we are reconnecting
        await until(lambda: "reconnecting" in shown(app, "#banner"))
        assert app.query_one("#banner").has_class("shown")
        lines = conversation(app)
        assert "you: first" in lines[0] and lines[1].endswith("bob: second")
        # And what alice types waits in the outbox, marked pending
        await pilot.click("#input")
        await pilot.press(*"later", "enter")
        await until(lambda: len(conversation(app)) == 3)
        assert conversation(app)[2].endswith("you: later  …")


async def test_every_conversation_is_listed_with_unread_counts_and_switched_with_keys(
    client: MakeClient,
) -> None:
    # Given alice in the chat with carol
    alice, carol, erin = await client("alice"), await client("carol"), await client("erin")
    await carol.send_and_wait("alice", "hi from carol")
    app = ChatApp(alice, "carol")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: any("hi from carol" in line for line in conversation(app)))
        # When erin writes to alice
        await erin.send_and_wait("alice", "psst, erin here")
        # Then the list shows erin with one unread message, and a notice says so
        await until(lambda: "erin (1)" in shown(app, "#conversations"))
        assert "▸ carol" in shown(app, "#conversations")
        assert any("new message from erin" in str(n.message) for n in app._notifications)
        # When alice presses Ctrl+N, Then erin's conversation opens, read
        await pilot.press("ctrl+n")
        await until(lambda: any("psst, erin here" in line for line in conversation(app)))
        assert app.peer == "erin"
        await until(lambda: "erin (1)" not in shown(app, "#conversations"))
        assert "▸ erin" in shown(app, "#conversations")
        # And Ctrl+P goes back to carol
        await pilot.press("ctrl+p")
        await until(lambda: app.peer == "carol")
        assert not any("psst" in line for line in conversation(app))


async def test_quitting_with_unsent_text_asks_first(client: MakeClient) -> None:
    alice = await client("alice")
    app = ChatApp(alice, "bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#input")
        await pilot.press(*"half a thought")
        # When alice presses Ctrl+C with text in the box, Then the chat warns and stays
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running
        assert any("not sent" in str(n.message) for n in app._notifications)
        # And a second Ctrl+C quits
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


async def test_a_peer_whose_presence_is_not_shown_is_not_called_offline(
    client: MakeClient,
) -> None:
    # Given bob online, sharing his presence with his contacts only (the default)
    alice = await client("alice")
    await client("bob")
    app = ChatApp(alice, "bob")
    async with app.run_test(size=(140, 30)):
        # Then alice's header says why she sees nothing, not "offline"
        await until(lambda: "contacts only" in shown(app, "#peer"))
        assert "offline" not in shown(app, "#peer")
