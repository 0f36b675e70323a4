"""Linked devices in the web app, in a real Chromium against the local stack (§8).

Alice starts in one browser profile (device 1), links a second browser profile from the
code it shows, bob writes to her from a third, and both of her browsers read it; what the
second one writes shows in the first as hers. Its private keys are non-extractable
CryptoKeys in IndexedDB. Removed, it gets nothing more.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from messenger_local import LocalStack
from tests.web.pages import WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# In the page: whether the stored identity's private keys are CryptoKeys that refuse export.
STORED_KEYS_LOCKED = """async () => {
  const db = await new Promise((resolve, reject) => {
    const opening = indexedDB.open('messenger');
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
  const record = await new Promise((resolve, reject) => {
    const request = db.transaction('identity').objectStore('identity').get('me');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const results = [];
  for (const key of [record.signPrivate, record.boxPrivate]) {
    let exported = true;
    try { await crypto.subtle.exportKey('pkcs8', key); } catch { exported = false; }
    results.push({ cryptoKey: key instanceof CryptoKey, extractable: key.extractable, exported });
  }
  return { deviceId: record.deviceId, hasSeed: 'signSeed' in record, keys: results };
}"""


async def test_a_second_browser_is_linked_reads_and_writes_as_alice_and_is_removed(
    browser: Browser, web_stack: LocalStack
) -> None:
    url = f"http://{web_stack.host}:{web_stack.port}/"
    phone = await WebUser.open(browser, url)
    laptop = await WebUser.open(browser, url)
    bob = await WebUser.open(browser, url)
    try:
        # Given alice on her first browser (device 1) and bob
        await phone.start("alice")
        await bob.start("bob")

        # When her second browser asks to be linked, it shows a code as text and as a QR code
        await laptop.page.get_by_text("Link this browser to your account", exact=True).click()
        await laptop.page.get_by_label("The account to join (its id)").fill("alice")
        await laptop.page.get_by_label("A name for this browser").fill("laptop")
        await laptop.page.get_by_role("button", name="Show my link code").click()
        await expect(laptop.page.get_by_role("img", name="link code as a QR code")).to_be_visible()
        code = await laptop.page.locator("#link-code").text_content()
        assert code is not None and code.startswith("ml1:")

        # And device 1 links it by that code
        await phone.page.get_by_text("Linked devices", exact=True).click()
        await phone.page.get_by_label("Link a device: paste the code it shows").fill(code)
        await phone.page.get_by_role("button", name="Link", exact=True).click()
        await expect(phone.page.get_by_text("Linked.")).to_be_visible()
        await expect(phone.page.locator("#device-list li")).to_have_count(2)

        # Then the second browser connects as alice's device "laptop"
        await laptop.page.get_by_role("button", name="It is linked: connect").click()
        await expect(laptop.page.get_by_label("Chat with")).to_be_visible()
        await expect(laptop.page.locator("#me")).to_contain_text("You are alice (laptop)")

        # And its private keys are non-extractable CryptoKeys: a page script cannot read them
        stored = await laptop.page.evaluate(STORED_KEYS_LOCKED)
        assert stored["deviceId"] == "laptop"
        assert stored["hasSeed"] is False
        assert stored["keys"] == [{"cryptoKey": True, "extractable": False, "exported": False}] * 2

        # When bob writes to alice, both her browsers read it
        await bob.open_chat("alice")
        await bob.type_and_send("hello alice, on every device")
        for device in (phone, laptop):
            await device.open_chat("bob")
            await expect(device.message("hello alice, on every device")).to_be_visible()

        # When her laptop answers, bob reads it and her phone shows it as hers
        await laptop.type_and_send("answered from my laptop")
        await expect(bob.message("answered from my laptop")).to_be_visible()
        await expect(phone.message("answered from my laptop")).to_be_visible()
        await expect(phone.message("answered from my laptop")).to_have_class("mine")

        # When device 1 removes the laptop, it gets nothing more
        await phone.page.get_by_role("button", name="Remove").click()
        await expect(phone.page.get_by_text("Removed laptop.")).to_be_visible()
        await expect(phone.page.locator("#device-list li")).to_have_count(1)
        removed = laptop.page.get_by_text("This browser was removed from alice's devices")
        await expect(removed).to_be_visible()
        await bob.type_and_send("after the laptop was removed")
        await expect(phone.message("after the laptop was removed")).to_be_visible()
        await asyncio.sleep(2)
        await expect(laptop.message("after the laptop was removed")).to_have_count(0)
    finally:
        for user in (phone, laptop, bob):
            await user.close()
