// Linked devices on the real local stack (driven by tests/web/test_devices_live.py): alice's
// device 1 (tweetnacl keys) links a second device of hers with non-extractable WebCrypto
// keys from its ml1: code; bob writes to her and both her devices read it; each of her
// devices writes to bob and the other shows it as hers; then device 1 removes the second.
// Every frame the stack sends is checked against docs/asyncapi.yaml. One JSON line per step.
//   node web/test/live/devices.mjs WS_URL

import { Identity } from '../../sdk/crypto.js';
import { PROTOCOL_SCHEMAS } from '../../sdk/schema.js';
import { WebCryptoIdentity } from '../../sdk/webcrypto.js';
import { ajvChecker, asyncapiSchemas } from '../support/schemas.mjs';
import { makeClient } from '../support/clients.mjs';

const [url] = process.argv.slice(2);
const say = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));
const checker = ajvChecker(asyncapiSchemas());
let checked = 0;
const open = async (userId, identity) => {
  const client = await makeClient(userId, {
    url,
    identity,
    schemas: PROTOCOL_SCHEMAS,
    checkReceived: (frame) => {
      if ('type' in frame) {
        checker.check(frame);
        checked += 1;
      }
    },
  });
  await client.waitSynced(10_000);
  return client;
};
const fromPeer = (client, sender, text) => client.next('message', ({ message }) => message.sender === sender && message.text === text, 20_000);

const phone = await open('alice', Identity.generate('alice'));
const bob = await open('bob', Identity.generate('bob'));
const tabIdentity = await WebCryptoIdentity.generate('alice', 'tab');
const tabCode = (await makeClient('alice', { url, identity: tabIdentity, start: false })).linkCode();
const list = await phone.linkDevice(tabCode);
say('linked', { version: list.version, devices: list.devices.map((device) => device.deviceId), code: tabCode });

const tab = await open('alice', tabIdentity);
const seenByTab = await tab.deviceList(); // verified under the account key it pins
say('tabOnline', { fingerprint: tab.fingerprint(), phoneFingerprint: phone.fingerprint(), version: seenByTab.version });

// bob -> alice: both her devices read it
const bobText = 'hello to both of your devices ✓';
const onPhone = fromPeer(phone, 'bob', bobText);
const onTab = fromPeer(tab, 'bob', bobText);
const fromBob = await bob.send('alice', bobText);
await Promise.all([onPhone, onTab]);
await bob.next('status', (event) => event.messageIds.includes(fromBob.messageId) && event.status === 'delivered', 20_000);
say('bothRead', { messageId: fromBob.messageId });

// alice's tab -> bob: bob reads it, her phone shows it as hers (and its delivered receipt)
const tabText = 'from my browser';
const bobGets = fromPeer(bob, 'alice', tabText);
const phoneCopy = phone.next('message', ({ message }) => message.sender === 'alice' && message.text === tabText, 20_000);
const sent = await tab.send('bob', tabText);
await tab.waitSent(sent.messageId, 10_000);
const [, copy] = await Promise.all([bobGets, phoneCopy]);
await phone.next('status', (event) => event.messageIds.includes(sent.messageId) && event.status === 'delivered', 20_000)
  .catch(() => null);
say('tabSent', { messageId: sent.messageId, copyPeer: copy.message.peer, copyOutgoing: copy.message.outgoing, phoneStatus: phone.messages('bob').find((m) => m.messageId === sent.messageId)?.status });

// alice's phone -> bob: her tab shows it as hers
const phoneText = 'from my phone';
const tabCopy = tab.next('message', ({ message }) => message.sender === 'alice' && message.text === phoneText, 20_000);
const bobGets2 = fromPeer(bob, 'alice', phoneText);
await phone.send('bob', phoneText);
const [second] = await Promise.all([tabCopy, bobGets2]);
say('phoneSent', { copyPeer: second.message.peer, tabHistory: tab.messages('bob').map((m) => [m.sender, m.text]) });

// device 1 removes the tab: the server closes it (DEVICE_REMOVED)
const removed = tab.next('serverError', (event) => event.code === 'DEVICE_REMOVED', 20_000);
const after = await phone.removeDevice('tab');
await removed;
say('removed', { version: after.version, devices: after.devices.map((device) => device.deviceId) });

await Promise.all([phone.close(), bob.close(), tab.close()]);
say('done', { framesChecked: checked });
process.exit(0);
