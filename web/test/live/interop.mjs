// The JS SDK against the real local stack, chatting with a Python SDK user (driven by
// tests/web/test_sdk_live.py). Prints one JSON line per step; every frame the server
// sends is checked against docs/asyncapi.yaml as published (no v1.1 additions).
//   node web/test/live/interop.mjs WS_URL USER_ID PEER_ID

import { Identity } from '../../sdk/crypto.js';
import { PROTOCOL_SCHEMAS } from '../../sdk/schema.js';
import { ajvChecker, asyncapiSchemas } from '../support/schemas.mjs';
import { makeClient } from '../support/clients.mjs';

const [url, userId, peer] = process.argv.slice(2);
const say = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));
const checker = ajvChecker(asyncapiSchemas());
let checked = 0;

const client = await makeClient(userId, {
  url,
  identity: Identity.generate(userId),
  schemas: PROTOCOL_SCHEMAS,
  checkReceived: (frame) => {
    if ('type' in frame) {
      checker.check(frame);
      checked += 1;
    }
  },
});
await client.waitSynced(10_000);
say('ready', { fingerprint: client.fingerprint() });

const received = await client.next('message', ({ message }) => message.sender === peer, 20_000);
say('received', { text: received.message.text, peerFingerprint: client.fingerprint(peer) });
await client.markSeen(peer);

const [presence] = await client.getPresence([peer], { subscribe: true });
say('presence', presence);

const message = await client.send(peer, 'hello from the JavaScript SDK ✓');
await client.waitSent(message.messageId, 10_000);
say('sent', { messageId: message.messageId });
await client.next('status', (event) => event.messageIds.includes(message.messageId) && event.status === 'seen', 20_000);
say('seen', { messageId: message.messageId });

const offline = await client.next('presence', (event) => event.userId === peer && !event.online, 20_000);
say('peerOffline', { lastSeen: offline.lastSeen });
await client.close();
say('done', { framesChecked: checked });
process.exit(0);
