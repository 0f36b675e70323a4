"""The web app in a real Chromium against the local stack: what the issue asks, as a person.

Each test starts the stack in-process (it serves the app at / on its own port) and drives
headless Chromium by the accessible names the page promises. The CLI peer is the real
`messenger` command in a subprocess. Screenshots at phone and desktop size land in docs/.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
import pytest
from playwright.async_api import Browser, expect

from messenger_local import EmbeddedAws, LocalStack
from tests.support.waiting import until
from tests.web.pages import PHONE, Cli, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def app_url(stack: LocalStack) -> str:
    return f"http://{stack.host}:{stack.port}/"


@pytest.fixture
def cli(tmp_path: Path, web_stack: LocalStack) -> Cli:
    home = tmp_path / "messenger-home"
    home.mkdir(mode=0o700)
    return Cli(home, web_stack.ws_url)


async def test_a_browser_user_and_a_cli_user_chat_both_ways(
    browser: Browser, web_stack: LocalStack, cli: Cli
) -> None:
    # Given bob, registered from a terminal, and alice on her first visit in a browser
    await cli.ok("--profile", "bob", "init")
    await cli.ok("--profile", "bob", "read")
    alice = await WebUser.open(browser, app_url(web_stack))
    await alice.start("alice")

    # When she opens a chat with bob
    await alice.open_chat("bob")

    # Then she sees his safety number (the one bob's own CLI shows), and not his presence:
    # he never wrote to her, so she is not among those who may see it
    bobs_number = re.search(r"(\d{5}( \d{5}){5})", await cli.ok("--profile", "bob", "fingerprint"))
    assert bobs_number is not None
    await expect(alice.page.get_by_label("Safety number")).to_have_text(bobs_number.group(1))
    await alice.expect_presence("presence not shared: ")

    # When she sends (Enter) and bob reads in his terminal, marking it seen
    await alice.type_and_send("hello bob, from the browser")
    await expect(alice.mark_of("hello bob, from the browser", "sent")).to_be_visible()
    read = await cli.ok("--profile", "bob", "read", "--seen")

    # Then bob got it, and her mark goes to seen
    assert "alice: hello bob, from the browser" in read
    await expect(alice.mark_of("hello bob, from the browser", "seen")).to_be_visible()

    # When bob comes online with a watching terminal (it knows no contacts, and sends no
    # visibility: devices only add to the user's list, so what the send adds holds) and,
    # once it has synced, writes to her
    synced_before = syncs(web_stack, "bob")
    watcher = await cli.start("--profile", "bob", "read", "--watch", "--seen")
    try:
        await until(lambda: syncs(web_stack, "bob") > synced_before, timeout=20)
        await cli.ok("--profile", "bob", "send", "alice", "hi alice, from the terminal")

        # Then his message appears in her chat, he learns she has seen it, and now that
        # he wrote to her she sees him online
        await expect(alice.message("hi alice, from the terminal")).to_be_visible()
        await until_history(cli, "bob", "alice", "hi alice, from the terminal  ✓✓ seen")
        await alice.expect_presence("online")

        # And what she sends now is printed at once in his terminal, and delivered
        await alice.type_and_send("you are online now", enter=False)
        assert watcher.stdout is not None
        line = await asyncio.wait_for(watcher.stdout.readline(), 20)
        assert line.decode().rstrip().endswith("alice: you are online now")
        await expect(alice.mark_of("you are online now", "delivered")).to_be_visible()
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 20) == 0

    # When his terminal closes (marking what he read seen), she sees both
    await expect(alice.mark_of("you are online now", "seen")).to_be_visible()
    await alice.expect_presence("last seen ")  # a time, not "last seen: unknown"
    await alice.close()


def syncs(stack: LocalStack, user: str) -> int:
    """How many times `user`'s clients have asked for what is queued for them."""
    return len(stack.invocations_of("sync", user=user))


async def alice_chatting_with_bob(browser: Browser, url: str, cli: Cli) -> WebUser:
    """bob registered from a terminal; alice, on her first visit, with his chat open."""
    await cli.ok("--profile", "bob", "init")
    await cli.ok("--profile", "bob", "read")
    alice = await WebUser.open(browser, url)
    await alice.start("alice")
    await alice.open_chat("bob")
    return alice


async def until_history(cli: Cli, profile: str, peer: str, line: str) -> None:
    for _ in range(100):
        if line in await cli.ok("--profile", profile, "history", peer):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{profile}'s history with {peer} never showed {line!r}")


async def test_two_browser_users_chat(browser: Browser, web_stack: LocalStack) -> None:
    # Given carol on a phone and alice on a desktop, both on their first visit
    carol = await WebUser.open(browser, app_url(web_stack), viewport=PHONE)
    await carol.start("carol")
    alice = await WebUser.open(browser, app_url(web_stack))
    await alice.start("alice")

    # When alice writes to carol, who never wrote to her: she does not see carol's presence
    await alice.open_chat("carol")
    await alice.expect_presence("presence not shared: ")
    await alice.type_and_send("hi carol! lunch at noon?")

    # Then carol finds the conversation in her list, opens it, and alice sees it seen
    await carol.page.get_by_role("button", name=re.compile("^alice")).click()
    await expect(carol.message("hi carol! lunch at noon?")).to_be_visible()
    await expect(alice.mark_of("hi carol! lunch at noon?", "seen")).to_be_visible()
    await carol.expect_presence("online")

    # When carol answers, alice reads it, and carol's mark goes to seen too; and now that
    # carol wrote to her, alice sees her online
    await carol.type_and_send("yes, see you there")
    await expect(alice.message("yes, see you there")).to_be_visible()
    await expect(carol.mark_of("yes, see you there", "seen")).to_be_visible()
    await alice.expect_presence("online")
    await alice.type_and_send("great, I'll book a table")
    await expect(carol.message("great, I'll book a table")).to_be_visible()
    await expect(alice.mark_of("great, I'll book a table", "seen")).to_be_visible()

    # Then the pictures for the README: phone and desktop
    await carol.screenshot("web-phone.png")
    await alice.screenshot("web-desktop.png")

    # When alice closes her browser, carol sees when she was last seen
    await alice.close()
    await carol.expect_presence("last seen")
    await carol.close()


async def test_a_browser_reconnects_after_the_server_closes_it_and_loses_nothing_typed(
    browser: Browser, web_stack: LocalStack, cli: Cli
) -> None:
    # Given alice chatting with bob in her browser
    alice = await alice_chatting_with_bob(browser, app_url(web_stack), cli)
    await alice.type_and_send("before the break")
    await expect(alice.mark_of("before the break", "sent")).to_be_visible()

    # When the server closes her connection while her network is down
    await alice.context.set_offline(True)
    (connection_id,) = web_stack.connection_ids()
    management = boto3.client(  # signed, as the functions call it (browser_guard)
        "apigatewaymanagementapi",
        endpoint_url=web_stack.http_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    await asyncio.to_thread(management.delete_connection, ConnectionId=connection_id)

    # Then she sees she is offline, and what she types waits
    await expect(alice.page.get_by_role("status").filter(has_text="Offline")).to_be_visible()
    typed = ["typed while offline, one", "typed while offline, two", "typed while offline, three"]
    for text in typed:
        await alice.type_and_send(text)
        await expect(alice.mark_of(text, "sending")).to_be_visible()

    # When her network comes back, she reconnects by herself and everything goes out
    await alice.context.set_offline(False)
    await expect(alice.page.get_by_role("status").filter(has_text="Offline")).to_be_hidden()
    for text in typed:
        await expect(alice.mark_of(text, "sent")).to_be_visible()

    # And bob gets every message, once each, in the order she typed them
    read = await cli.ok("--profile", "bob", "read")
    received = [line.split("alice: ", 1)[1] for line in read.splitlines() if "alice: " in line]
    assert received == ["before the break", *typed]
    for text in typed:
        await expect(alice.mark_of(text, "delivered")).to_be_visible()
    await alice.close()


async def test_a_peers_key_change_holds_their_messages_until_verified_then_shows_them(
    browser: Browser, shared_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # Given alice in her browser, who pinned bob's keys by chatting with him
    first = LocalStack(aws=shared_aws)
    await first.start()
    port = first.port
    cli = Cli(tmp_path, first.ws_url)
    (tmp_path).chmod(0o700)
    alice = await alice_chatting_with_bob(browser, app_url(first), cli)
    safety_number = alice.page.get_by_label("Safety number")
    await expect(safety_number).to_have_text(re.compile(r"^\d{5}( \d{5}){5}$"))
    pinned = await safety_number.text_content()
    await alice.type_and_send("hi bob")
    await expect(alice.mark_of("hi bob", "sent")).to_be_visible()

    # When the server is replaced by one where someone else registered "bob" with other keys
    await first.stop()
    second = LocalStack(aws=shared_aws, port=port)
    await second.start()
    try:
        # (her page is back on the new server before anyone else connects: the banner
        # alone may not have shown yet if her browser had not noticed the old one go)
        await until(lambda: len(second.connection_ids()) == 1, timeout=30)
        await cli.ok("--profile", "mallory", "init", "--user", "bob")
        await cli.ok("--profile", "mallory", "read")
        await expect(alice.page.get_by_role("status").filter(has_text="Offline")).to_be_hidden()
        new_number = re.search(
            r"(\d{5}( \d{5}){5})", await cli.ok("--profile", "mallory", "fingerprint")
        )
        assert new_number is not None

        # Then what alice sends to bob is refused, with the warning, and nothing goes out;
        # her text stays in the box, marked as not sent
        await alice.type_and_send("are you really bob?")
        warning = alice.page.get_by_role("alert").filter(has_text="keys of bob changed")
        await expect(warning).to_be_visible()
        await expect(alice.message("are you really bob?")).to_have_count(0)
        await expect(alice.page.get_by_label("Message")).to_have_value("are you really bob?")
        await expect(alice.page.get_by_role("alert").filter(has_text="Not sent")).to_be_visible()

        # And a line that stays in the transcript gives both safety numbers
        changed = alice.log.get_by_role("listitem").filter(has_text="safety number of bob changed")
        await expect(changed).to_contain_text(pinned or "")
        await expect(changed).to_contain_text(new_number.group(1))

        # When the new "bob" writes twice: alice's browser holds both (acked only once
        # stored), shows neither, and says so; they survive a reload
        await cli.ok("--profile", "mallory", "send", "alice", "trust me, I am bob")
        await cli.ok("--profile", "mallory", "send", "alice", "really, it is me")
        held = alice.page.get_by_role("status").filter(
            has_text="2 messages from bob are held until you verify bob's new safety number"
        )
        await expect(held).to_be_visible()
        await until(lambda: len(second.invocations_of("ack")) >= 1, timeout=20)
        await expect(alice.message("trust me, I am bob")).to_have_count(0)
        await expect(alice.page.get_by_label("Safety number")).to_have_text(pinned or "")
        await alice.page.reload()
        await alice.page.get_by_role("button", name=re.compile("^bob")).click()
        await expect(held).to_be_visible()
        await expect(changed).to_be_visible()
        await alice.screenshot("web-key-change.png")

        # When she compares the new number with bob and trusts it
        await alice.page.get_by_label("Number they read you").fill(new_number.group(1))
        await alice.page.get_by_role("button", name="Trust").click()

        # Then both messages show, in order, after hers, and nothing is held any more
        await expect(alice.message("really, it is me")).to_be_visible()
        texts = await alice.log.get_by_role("listitem").locator(".text").all_text_contents()
        assert texts == ["hi bob", "trust me, I am bob", "really, it is me"], texts
        await expect(held).to_be_hidden()
        await expect(alice.page.get_by_label("Safety number")).to_have_text(new_number.group(1))
        # And what she sends to bob now goes
        await alice.type_and_send("are you really bob?")
        await expect(alice.mark_of("are you really bob?", "sent")).to_be_visible()
    finally:
        await alice.close()
        await second.stop()


async def test_nothing_sensitive_in_local_storage_or_in_any_request_but_the_signed_connect(
    browser: Browser, web_stack: LocalStack, cli: Cli
) -> None:
    # Given alice chatting with bob, every request and frame of her page recorded
    alice = await alice_chatting_with_bob(browser, app_url(web_stack), cli)
    secret_out = "my secret plan: the tunnel is under the oak"
    secret_in = "bob's secret answer: the key is in the blue vase"
    await alice.type_and_send(secret_out)
    await expect(alice.mark_of(secret_out, "sent")).to_be_visible()
    await cli.ok("--profile", "bob", "send", "alice", secret_in)
    await expect(alice.message(secret_in)).to_be_visible()

    # When we look at what the page keeps and what it sent
    stored = await alice.page.evaluate(
        """async () => {
            const db = await new Promise((ok, fail) => {
                const opening = indexedDB.open('messenger');
                opening.onsuccess = () => ok(opening.result);
                opening.onerror = () => fail(opening.error);
            });
            const record = await new Promise((ok) => {
                const get = db.transaction('identity').objectStore('identity').get('me');
                get.onsuccess = () => ok(get.result);
            });
            return {
                // Non-extractable CryptoKeys where the browser has them: no bytes to look for
                extractable: [record.signPrivate, record.boxPrivate].map((key) => key?.extractable),
                signSeed: Array.from(record.signSeed ?? []),
                boxSecret: Array.from(record.boxSecret ?? []),
                localStorage: Object.keys(localStorage).length,
                sessionStorage: Object.keys(sessionStorage).length,
                cookies: document.cookie,
            };
        }"""
    )
    assert stored["extractable"] == [False, False]
    private_keys = [bytes(stored["signSeed"]), bytes(stored["boxSecret"])]
    private_keys = [key for key in private_keys if key]
    secrets = [secret_out, secret_in]
    for key in private_keys:
        secrets += [
            base64.urlsafe_b64encode(key).decode().rstrip("="),
            base64.b64encode(key).decode().rstrip("="),
            key.hex(),
        ]

    # Then the keys are in IndexedDB only: nothing in localStorage, sessionStorage, cookies
    assert (stored["localStorage"], stored["sessionStorage"], stored["cookies"]) == (0, 0, "")

    # And no HTTP request carries a secret, nor even who she is
    assert alice.traffic.requests, "the page's own files and config.json were requested"
    for request in alice.traffic.requests:
        seen = json.dumps(request)
        assert "alice" not in seen, request["url"]
        assert not [secret for secret in secrets if secret in seen], request["url"]

    # And the WebSocket connects carry only the signed query, and no frame a secret
    assert alice.traffic.sockets
    for url in alice.traffic.sockets:
        assert re.fullmatch(
            re.escape(web_stack.ws_url)
            + r"\?userId=alice&ts=\d+&nonce=[\w-]+&sig=[\w-]+"
            # the v1.2 form: bound to the endpoint it connects to (docs/protocol.md §1)
            + re.escape("&aud=" + urllib.parse.quote(web_stack.ws_url, safe=""))
            + r"&signKey=[\w-]{43}&boxKey=[\w-]{43}",
            url,
        ), url
        assert not [secret for secret in secrets if secret in url]
    assert alice.traffic.frames
    for frame in alice.traffic.frames:
        assert not [secret for secret in secrets if secret in frame], frame
    await alice.close()


async def test_a_first_day_in_the_web_app(browser: Browser, web_stack: LocalStack) -> None:
    # Given carol on her phone, on her first visit: her list says how to begin
    carol = await WebUser.open(browser, app_url(web_stack), viewport=PHONE)
    await carol.start("carol")
    await expect(carol.page.get_by_text("No conversations yet")).to_be_visible()

    # When someone else picks "carol" too, then it says at once that the id is taken
    other = await WebUser.open(browser, app_url(web_stack))
    await other.page.get_by_label("User id").fill("carol")
    started = asyncio.get_running_loop().time()
    await other.page.get_by_role("button", name="Start").click()
    taken = other.page.get_by_role("alert")
    await expect(taken).to_contain_text("is taken", timeout=5_000)
    assert asyncio.get_running_loop().time() - started < 5
    await expect(other.page.get_by_role("button", name="Start")).to_be_enabled()
    await other.close()

    # When alice writes carol two lines (Shift+Enter), then Enter sends them as one message
    alice = await WebUser.open(browser, app_url(web_stack))
    await alice.start("alice")
    await alice.open_chat("carol")
    box = alice.page.get_by_label("Message")
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.type("second line")
    await box.press("Enter")
    await expect(box).to_have_value("")
    # Stored: "sent", or already "delivered" (carol is online and may ack at once)
    stored = alice.message("second line").get_by_role("img", name=re.compile("^(sent|delivered)$"))
    await expect(stored).to_be_visible()
    text = await alice.message("second line").locator(".text").text_content()
    assert text == "first line\nsecond line"

    # Then carol's list shows alice first, with an unread badge
    first = carol.page.get_by_role("list").first.get_by_role("button").first
    await expect(first).to_contain_text("alice")
    await expect(carol.page.get_by_label("1 unread")).to_be_visible()

    # When carol is in her chat with dave and alice writes again, a notice tells her
    await carol.open_chat("dave")
    await alice.type_and_send("are you there?")
    notice = carol.page.get_by_role("status").filter(has_text="New message from alice")
    await expect(notice).to_be_visible()

    # And her phone header is compact: the safety number waits behind "Verify"
    await carol.page.get_by_role("button", name="Back to conversations").click()
    await carol.page.get_by_role("button", name=re.compile("^alice")).click()
    header = await carol.page.locator(".chat-head").bounding_box()
    assert header is not None and header["height"] < 80, header
    await expect(carol.page.get_by_label("Safety number")).to_be_hidden()
    await carol.page.get_by_role("button", name="Verify").click()
    safety_number = re.compile(r"^\d{5}( \d{5}){5}$")
    await expect(carol.page.get_by_label("Safety number")).to_have_text(safety_number)

    # When alice's window shrinks after many messages, the newest stays in view
    for number in range(25):
        await alice.type_and_send(f"line {number}")
    await expect(alice.message("line 24")).to_be_visible()
    await alice.page.set_viewport_size({"width": 1280, "height": 420})
    await expect(alice.message("line 24")).to_be_in_viewport()

    # When alice sets who sees her online to everyone, the server hears it, and it stays
    await alice.page.get_by_text("Settings").click()
    # (by default her contacts, listed by name: the people she wrote to, as the server holds)
    await expect(alice.page.get_by_text("They are: carol.")).to_be_visible()
    await alice.page.get_by_label("Who sees when you are online").select_option("everyone")
    await until(lambda: sent(alice, '"visibility":"everyone"'), timeout=10)
    await alice.page.reload()
    await expect(alice.page.get_by_label("Who sees when you are online")).to_have_value("everyone")

    # And a Block control for the open chat asks the server to block (§2 setBlocked)
    await alice.page.get_by_role("button", name="Block").click()
    await until(lambda: sent(alice, '"action":"setBlocked","add":["carol"]'), timeout=10)
    await alice.close()
    await carol.close()


async def test_closing_the_tab_with_unsent_text_asks_first(
    browser: Browser, web_stack: LocalStack
) -> None:
    # Given alice in a chat with text typed and not sent
    alice = await WebUser.open(browser, app_url(web_stack))
    await alice.start("alice")
    await alice.open_chat("bob")
    await alice.page.get_by_label("Message").fill("half a thought")
    asked: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def answer(dialog: Any) -> None:
        if not asked.done():
            asked.set_result(dialog.type)
        await dialog.dismiss()  # she stays

    alice.page.on("dialog", answer)
    # When she closes the tab, Then the browser asks before leaving, and the text stays
    await alice.page.close(run_before_unload=True)
    assert await asyncio.wait_for(asked, 10) == "beforeunload"
    await expect(alice.page.get_by_label("Message")).to_have_value("half a thought")
    # And with nothing typed, the tab closes without a question
    await alice.page.get_by_label("Message").fill("")
    await alice.page.close(run_before_unload=True)
    await until(alice.page.is_closed, timeout=10)
    await alice.close()


def sent(user: WebUser, fragment: str) -> bool:
    """Whether a frame the page sent holds `fragment` (JSON without spaces)."""
    return any(fragment in frame.replace(" ", "") for frame in user.traffic.frames)
