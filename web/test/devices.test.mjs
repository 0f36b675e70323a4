// Linked devices in the JS SDK (docs/protocol.md §8): the Python SDK's vectors
// (tests/vectors/v12.json) for device lists, link codes and copies, with tweetnacl keys and
// with non-extractable WebCrypto keys; and the client against a fake server resealing a
// message refused STALE_DEVICES.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { decodePlaintext, Identity, openSealed, sendMessageFrame, signedConnectQuery } from '../sdk/crypto.js';
import {
  deviceListSigningText, deviceListVerifies, devicesMessageFrame, makeLinkCode, openCopy, parseLinkCode, signDeviceList,
} from '../sdk/devices.js';
import { b64urlDecode, fromUtf8 } from '../sdk/encoding.js';
import { identityFromRecord, WebCryptoIdentity, webCryptoKeysSupported } from '../sdk/webcrypto.js';
import { FakeServer } from './support/fake-server.mjs';
import { makeClient } from './support/clients.mjs';

const v12 = JSON.parse(readFileSync(new URL('../../tests/vectors/v12.json', import.meta.url), 'utf8'));
const vectors = JSON.parse(readFileSync(new URL('../../tests/vectors/crypto.json', import.meta.url), 'utf8'));
const entryOf = (userId, deviceId) => v12.devices[userId].find((entry) => entry.deviceId === deviceId);
const naclIdentity = (userId, deviceId) => {
  const entry = entryOf(userId, deviceId);
  return new Identity(userId, b64urlDecode(entry.signSeed), b64urlDecode(entry.boxSecret), deviceId);
};
const webIdentity = (userId, deviceId) => {
  const entry = entryOf(userId, deviceId);
  return WebCryptoIdentity.fromSeeds(userId, b64urlDecode(entry.signSeed), b64urlDecode(entry.boxSecret), deviceId);
};
const publicOf = ({ deviceId, signKey, boxKey }) => ({ deviceId, signKey, boxKey });
/** The list entries of these identities' devices. */
const devicesOf = (...identities) => identities.map((identity) => ({ deviceId: identity.deviceId, ...identity.publicKeys.toJSON() }));

test('given the device list vectors, then the signing text is the same and the list verifies only under its account key', async () => {
  for (const { signingText, document } of v12.deviceLists) {
    assert.equal(fromUtf8(deviceListSigningText(document)), signingText);
    const account = document.devices.find((device) => device.deviceId === '1');
    assert.ok(deviceListVerifies(document, document.userId, account));
    assert.ok(!deviceListVerifies({ ...document, version: document.version + 1 }, document.userId, account));
    const other = Identity.generate(document.userId).publicKeys;
    assert.ok(!deviceListVerifies(document, document.userId, other));
    // signed again by device 1 (Ed25519 is deterministic): the very same sig, with either kind of key
    const userId = document.userId;
    assert.equal((await signDeviceList(naclIdentity(userId, '1'), document)).sig, document.sig);
    assert.equal((await signDeviceList(await webIdentity(userId, '1'), document)).sig, document.sig);
  }
});

test('given the link code vector, then both ways are byte-exact, and bad codes are refused', () => {
  const { fields, code } = v12.linkCode;
  assert.equal(makeLinkCode(fields), code);
  assert.deepEqual(parseLinkCode(`  ${code}\n`), fields);
  for (const bad of ['', 'ml2:abc', 'ml1:!!!', makeLinkCode({ ...fields, deviceId: '1' }), makeLinkCode({ ...fields, signKey: 'AAAA' }), makeLinkCode({ ...fields, userId: 'Bob' })]) {
    assert.throws(() => parseLinkCode(bad), { name: 'InvalidLinkCode' }, bad);
  }
});

test('given the sealed vector, then the frame with copies is byte-identical (tweetnacl and WebCrypto), and every device opens its copy', async () => {
  const { sealed } = v12;
  const expected = JSON.parse(sealed.frame);
  const bobList = v12.deviceLists.find((list) => list.document.userId === 'bob').document;
  const aliceList = { userId: 'alice', version: expected.selfDevices, devices: v12.devices.alice.map(publicOf) };
  const keyNonces = Object.fromEntries([...expected.copies, ...expected.selfCopies].map((copy) => [copy.device, b64urlDecode(copy.keyNonce)]));
  const fixed = { messageKey: b64urlDecode(sealed.messageKey), nonce: b64urlDecode(expected.nonce), keyNonces };
  for (const alice of [naclIdentity('alice', '1'), await webIdentity('alice', '1')]) {
    const frame = await devicesMessageFrame(alice, bobList, aliceList, expected.messageId, sealed.text, expected.sentAt, fixed);
    assert.equal(frame, sealed.frame);
  }
  const senderDevice = publicOf(entryOf('alice', '1'));
  const copies = [['bob', '1', expected.copies[0]], ['bob', 'laptop', expected.copies[1]], ['alice', 'tablet', expected.selfCopies[0]]];
  for (const [userId, deviceId, copy] of copies) {
    assert.equal(copy.device, deviceId);
    for (const reader of [naclIdentity(userId, deviceId), await webIdentity(userId, deviceId)]) {
      const plaintext = await openCopy(reader, senderDevice, { ...copy, body: expected.body, nonce: expected.nonce });
      assert.equal(decodePlaintext(plaintext), sealed.text);
    }
  }
  // a device a copy was not sealed for cannot open it
  await assert.rejects(() => openCopy(naclIdentity('bob', 'laptop'), senderDevice, { ...expected.copies[0], body: expected.body, nonce: expected.nonce }), { name: 'UnreadableMessage' });
});

test('given WebCrypto keys from the vector seeds, then the v1.1 box and the connect signatures are byte-identical (crypto.json, v12.json)', async () => {
  assert.ok(await webCryptoKeysSupported());
  const [aliceEntry, bobEntry] = vectors.identities;
  const alice = await WebCryptoIdentity.fromSeeds(aliceEntry.userId, b64urlDecode(aliceEntry.signSeed), b64urlDecode(aliceEntry.boxSecret));
  const bob = await WebCryptoIdentity.fromSeeds(bobEntry.userId, b64urlDecode(bobEntry.signSeed), b64urlDecode(bobEntry.boxSecret));
  assert.equal(alice.fingerprint(), aliceEntry.fingerprint);
  const { box, connect } = vectors;
  assert.equal(await sendMessageFrame(alice, bob.publicKeys, box.messageId, box.text, box.sentAt, b64urlDecode(box.nonce)), box.frame);
  assert.equal(decodePlaintext(await openSealed(bob, alice.publicKeys, box.body, box.nonce)), box.text);
  assert.deepEqual(await signedConnectQuery(alice, connect.nowMs, connect.nonce), connect.query);
  for (const device of v12.connect.devices) {
    const identity = await webIdentity('alice', device.deviceId);
    const { signKey, boxKey, ...query } = await signedConnectQuery(identity, v12.connect.nowMs, v12.connect.nonce, { aud: v12.connect.aud });
    assert.deepEqual(query, device.query);
  }
});

test('given a generated WebCrypto identity, then its private keys are non-extractable CryptoKeys and its record restores it', async () => {
  const identity = await WebCryptoIdentity.generate('carol', 'phone');
  const record = identity.toRecord();
  for (const key of [record.signPrivate, record.boxPrivate]) {
    assert.ok(key instanceof CryptoKey);
    assert.equal(key.extractable, false);
    await assert.rejects(() => crypto.subtle.exportKey('pkcs8', key));
  }
  assert.ok(!JSON.stringify(identity).includes('Private'));
  const restored = identityFromRecord(record);
  assert.equal(restored.deviceId, 'phone');
  const bob = Identity.generate('bob');
  const sealed = await sendMessageFrame(restored, bob.publicKeys, '01J9Z3ABCDEFGHJKMNPQRSTVWX', 'hi', 1);
  const { body, nonce } = JSON.parse(sealed);
  assert.equal(decodePlaintext(await openSealed(bob, identity.publicKeys, body, nonce)), 'hi');
});

test('given bob links a laptop meanwhile, when alice sends and is refused STALE_DEVICES, then she fetches the list and seals for both devices', async () => {
  const bob = Identity.generate('bob');
  const laptop = Identity.generate('bob', 'laptop');
  const linked = await signDeviceList(bob, { userId: 'bob', version: 1, devices: devicesOf(bob, laptop) });
  let bobVersion = 0;
  const server = await new FakeServer({
    handlers: {
      getKeys: () => ({ type: 'keys', ...bob.publicKeys.toJSON(), ...(bobVersion ? { devices: linked } : {}) }),
      sendMessage: (frame) => {
        if ((frame.devices ?? 0) !== bobVersion) {
          return { type: 'error', code: 'STALE_DEVICES', message: 'stale', ref: frame.messageId, devices: bobVersion, selfDevices: 0 };
        }
        return { type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: Date.now() };
      },
    },
  }).start();
  const alice = await makeClient('alice', { url: server.url });
  try {
    await alice.waitSynced();
    await alice.peerKeys('bob'); // pinned at version 0
    bobVersion = 1; // bob links his laptop
    const message = await alice.send('bob', 'to both of you');
    await alice.waitSent(message.messageId, 5000);
    // (a slow machine may resend a frame unanswered in time)
    const sent = server.framesOf('sendMessage');
    const stale = sent.filter(({ frame }) => frame.copies === undefined);
    const sealed = sent.filter(({ frame }) => frame.copies !== undefined);
    assert.ok(stale.length >= 1 && sealed.length >= 1);
    assert.ok(sent.indexOf(sealed[0]) > sent.indexOf(stale.at(-1)));
    const last = sealed.at(-1).frame;
    assert.equal(last.messageId, message.messageId);
    assert.equal(last.devices, 1);
    assert.deepEqual(last.copies.map((copy) => copy.device), ['1', 'laptop']);
    const [aliceDevice] = devicesOf(alice.identity);
    for (const [reader, copy] of [[bob, last.copies[0]], [laptop, last.copies[1]]]) {
      assert.equal(decodePlaintext(await openCopy(reader, aliceDevice, { ...copy, body: last.body, nonce: last.nonce })), 'to both of you');
    }
  } finally {
    await alice.close();
    await server.stop();
  }
});

test('given a list not signed by the pinned account key, then it is a key change and nothing is sent', async () => {
  const bob = Identity.generate('bob');
  const mallory = Identity.generate('bob', 'evil');
  const forged = await signDeviceList(mallory, { userId: 'bob', version: 1, devices: devicesOf(bob, mallory) });
  const server = await new FakeServer({ handlers: { getKeys: () => ({ type: 'keys', ...bob.publicKeys.toJSON(), devices: forged }) } }).start();
  const alice = await makeClient('alice', { url: server.url });
  try {
    await alice.waitSynced();
    await assert.rejects(() => alice.send('bob', 'hi'), { name: 'DeviceListRefused' });
    assert.equal(server.framesOf('sendMessage').length, 0);
  } finally {
    await alice.close();
    await server.stop();
  }
});

test('given device 1 with a linked device, when its home cell changes epoch, then it sends its list again (§8)', async () => {
  let epoch = 'e1';
  const server = await new FakeServer({
    handlers: {
      sync: () => ({ type: 'syncDone', count: 0, more: false, epoch }),
      setDevices: (frame) => ({ type: 'devices', userId: 'alice', version: frame.version, devices: frame.devices, sig: frame.sig }),
    },
  }).start();
  const alice = await makeClient('alice', { url: server.url });
  try {
    await alice.waitSynced();
    const tab = Identity.generate('alice', 'tab');
    const list = await alice.linkDevice(makeLinkCode({ userId: 'alice', deviceId: 'tab', ...tab.publicKeys.toJSON() }));
    assert.deepEqual(list.devices.map((device) => device.deviceId), ['1', 'tab']);
    assert.ok(deviceListVerifies(list, 'alice', alice.identity.publicKeys));
    await assert.rejects(() => alice.linkDevice(makeLinkCode({ ...tab.publicKeys.toJSON(), userId: 'bob', deviceId: 'x' })), { name: 'InvalidLinkCode' });
    assert.equal(server.framesOf('setDevices').length, 1);

    epoch = 'e2'; // a failover: the list may not have been replicated
    alice.dropConnection();
    const again = await server.until(() => server.framesOf('setDevices').length === 2 && server.framesOf('setDevices'));
    assert.deepEqual(again[1].frame, again[0].frame);
  } finally {
    await alice.close();
    await server.stop();
  }
});

test('given a linked device, then it connects as itself without keys, and a copy of its account\'s own message is stored as sent by us', async () => {
  const phone = Identity.generate('alice');
  const tab = Identity.generate('alice', 'tab');
  const bob = Identity.generate('bob');
  const aliceList = await signDeviceList(phone, { userId: 'alice', version: 1, devices: devicesOf(phone, tab) });
  const server = await new FakeServer({
    handlers: {
      getKeys: (frame) => (frame.userId === 'alice' ? { type: 'keys', ...phone.publicKeys.toJSON(), devices: aliceList } : { type: 'keys', ...bob.publicKeys.toJSON() }),
    },
  }).start();
  server.deviceSignKeys.set('alice#tab', tab.publicKeys.signKey);
  const client = await makeClient('alice', { url: server.url, identity: tab });
  try {
    await client.waitSynced();
    const [query] = server.connects;
    assert.equal(query.deviceId, 'tab');
    assert.equal(query.signKey, undefined);
    assert.equal(query.boxKey, undefined);

    // alice's phone wrote to bob: the tab gets the copy sealed for it
    const bobList = { userId: 'bob', version: 0, devices: devicesOf(bob) };
    const frame = JSON.parse(await devicesMessageFrame(phone, bobList, aliceList, '01J9Z3ABCDEFGHJKMNPQRSTVW1', 'from my phone', 1764190000000));
    const [copy] = frame.selfCopies;
    const stored = client.next('message', () => true, 5000);
    server.send(server.live[0], {
      type: 'message', id: 'm#1', messageId: frame.messageId, from: 'alice', to: 'bob', fromDevice: '1',
      body: frame.body, nonce: frame.nonce, key: copy.key, keyNonce: copy.keyNonce, sentAt: frame.sentAt, serverTs: Date.now(),
    });
    const { message } = await stored;
    assert.equal(message.sender, 'alice');
    assert.equal(message.peer, 'bob');
    assert.equal(message.outgoing, true);
    assert.equal(message.text, 'from my phone');
    assert.equal(client.fingerprint(), phone.fingerprint()); // the account's number
    const acks = await server.until(() => server.framesOf('ack').length && server.framesOf('ack'));
    assert.deepEqual(acks[0].frame.ids, ['m#1']);

    // and what the tab writes is sealed for bob and for the phone
    const sent = await client.send('bob', 'from my tab');
    const [{ frame: out }] = await server.until(() => server.framesOf('sendMessage').length && server.framesOf('sendMessage'));
    assert.equal(out.messageId, sent.messageId);
    assert.deepEqual(out.copies.map((c) => c.device), ['1']);
    assert.deepEqual(out.selfCopies.map((c) => c.device), ['1']);
    assert.equal(out.selfDevices, 1);
    const tabDevice = devicesOf(tab)[0];
    assert.equal(decodePlaintext(await openCopy(phone, tabDevice, { ...out.selfCopies[0], body: out.body, nonce: out.nonce })), 'from my tab');
  } finally {
    await client.close();
    await server.stop();
  }
});
