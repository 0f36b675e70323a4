// The SDK against a fake server (support/fake-server.mjs): the outbox, acks, receipts,
// sync paging and batching, presence, contacts, keys, seen marks and epochs (§7).

import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { Identity, sendMessageFrame } from '../sdk/crypto.js';
import { MAX_ACK_RETRIES } from '../sdk/client-rules.generated.js';
import { UnknownUser } from '../sdk/errors.js';
import { MemoryBackend } from '../sdk/history.js';
import { FakeServer } from './support/fake-server.mjs';
import { makeClient } from './support/clients.mjs';

let server;
let clients;
// The user's presence visibility as the fake server keeps it (§2).
let visibility;
const bob = Identity.generate('bob');
const carol = Identity.generate('carol');
const keysOf = (identity) => ({ type: 'keys', userId: identity.userId, ...identity.publicKeys.toJSON() });
let itemNumber = 0;

/** A message item from `from` to `to`, as the server delivers it. */
async function messageItem(from, to, text, messageId = `msg-${++itemNumber}-abcdef`) {
  const frame = JSON.parse(await sendMessageFrame(from, to.publicKeys, messageId, text, 1764190000000 + itemNumber));
  return { type: 'message', id: `m#${from.userId}#${messageId}`, messageId, from: from.userId, body: frame.body, nonce: frame.nonce, sentAt: frame.sentAt, serverTs: Date.now() };
}

async function open(userId = 'alice', options = {}) {
  const client = await makeClient(userId, { url: server.url, ...options });
  clients.push(client);
  return client;
}

beforeEach(async () => {
  clients = [];
  visibility = { visibility: 'everyone', contacts: [] };
  server = await new FakeServer({
    handlers: {
      getKeys: (frame) => (frame.userId === 'bob' ? keysOf(bob) : frame.userId === 'carol' ? keysOf(carol) : { type: 'error', code: 'UNKNOWN_USER', message: 'no such user', ref: 'getKeys' }),
      sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: Date.now() }),
      getPresence: (frame) => ({ type: 'presence', users: frame.userIds.map((userId) => ({ userId, online: userId === 'bob', lastSeen: userId === 'bob' ? null : 1000 })) }),
      setPresenceVisibility: (frame) => {
        const contacts = frame.add ? [...new Set([...visibility.contacts, ...frame.add])] : (frame.contacts ?? []);
        visibility = { visibility: frame.visibility, contacts: frame.visibility === 'contacts' ? contacts : [] };
        return { type: 'presenceVisibility', visibility: frame.visibility, count: visibility.contacts.length };
      },
      getSettings: () => ({ type: 'settings', ...visibility, blocked: [] }),
    },
  }).start();
});

afterEach(async () => {
  for (const client of clients) await client.close();
  await server.stop();
});

test('given a first connect, then it is signed, registers the keys and syncs with batching', async () => {
  const alice = await open();
  await alice.waitSynced();
  const [query] = server.connects;
  assert.equal(query.userId, 'alice');
  assert.equal(query.signKey, alice.identity.publicKeys.signKey);
  assert.equal(query.boxKey, alice.identity.publicKeys.boxKey);
  // v1.2 (§1): bound to the endpoint connected to, which the fake checks like a cell does
  assert.equal(query.aud, server.url);
  assert.deepEqual(server.framesOf('sync')[0].frame, { action: 'sync', batch: true });
});

test('given no ack, then the outbox resends the byte-identical frame until one comes, in order', async () => {
  let copies = 0;
  server.handlers.sendMessage = (frame) => {
    copies += 1;
    return copies < 3 ? undefined : { type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 5 };
  };
  const alice = await open();
  await alice.waitSynced();
  const first = await alice.send('bob', 'one');
  const second = await alice.send('bob', 'two');
  const sent = await alice.waitSent(first.messageId, 5000);
  assert.equal(sent.status, 'sent');
  await alice.waitSent(second.messageId, 5000);
  const frames = server.framesOf('sendMessage');
  const ofFirst = frames.filter(({ frame }) => frame.messageId === first.messageId).map(({ text }) => text);
  assert.equal(ofFirst.length, 3);
  assert.equal(new Set(ofFirst).size, 1, 'every copy is the same bytes');
  // The second went only after the first was acked.
  const firstOfSecond = frames.findIndex(({ frame }) => frame.messageId === second.messageId);
  assert.equal(firstOfSecond, 3);
});

test('given the connection drops before the ack, then the same frame goes again on the new one', async () => {
  server.handlers.sendMessage = (frame, connection) => {
    if (server.connections.length === 1) {
      connection.socket.terminate();
      return undefined;
    }
    return { type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 5 };
  };
  const alice = await open();
  await alice.waitSynced();
  const message = await alice.send('bob', 'across a reconnect');
  await alice.waitSent(message.messageId, 5000);
  const texts = server.framesOf('sendMessage').map(({ text }) => text);
  assert.equal(texts.length, 2);
  assert.equal(texts[0], texts[1]);
  assert.notEqual(server.framesOf('sendMessage')[0].connection, server.framesOf('sendMessage')[1].connection);
});

test('given a final refusal, then the message fails; a rate limit is retried', async () => {
  let limited = 0;
  server.handlers.sendMessage = (frame) => {
    if (frame.to === 'carol') return { type: 'error', code: 'UNKNOWN_RECIPIENT', message: 'no carol', ref: frame.messageId };
    limited += 1;
    if (limited === 1) return { type: 'error', code: 'RATE_LIMITED', message: 'slow down', ref: frame.messageId };
    return { type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 5 };
  };
  const alice = await open();
  await alice.waitSynced();
  const toCarol = await alice.send('carol', 'hi');
  await assert.rejects(alice.waitSent(toCarol.messageId, 5000), UnknownUser);
  assert.equal(alice.messages('carol')[0].status, 'failed');
  const toBob = await alice.send('bob', 'hi');
  assert.equal((await alice.waitSent(toBob.messageId, 5000)).status, 'sent');
  assert.equal(limited, 2);
});

for (const code of ['RATE_LIMITED', 'QUEUE_FULL']) {
  test(`given ${code} with a retryAfter beyond the resend backoff, then the same frame goes again no sooner`, async () => {
    // §3: "the client sends the same frame again no sooner" than `retryAfter` (ms); the
    // SDK's own resend backoff (resendCap 400 ms here) would come back far earlier.
    const retryAfter = 1500;
    const tries = [];
    server.handlers.sendMessage = (frame) => {
      tries.push(Date.now());
      if (tries.length === 1) return { type: 'error', code, message: 'later', ref: frame.messageId, retryAfter };
      return { type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 5 };
    };
    const alice = await open();
    await alice.waitSynced();
    const message = await alice.send('bob', 'hi');
    assert.equal((await alice.waitSent(message.messageId, 5000)).status, 'sent');
    const texts = server.framesOf('sendMessage').map(({ text }) => text);
    assert.equal(texts.length, 2);
    assert.equal(texts[0], texts[1]);
    assert.ok(tries[1] - tries[0] >= retryAfter, `resent after ${tries[1] - tries[0]} ms`);
  });
}

test('given messages and receipts, then they are stored, acked in one batch, and marks move forward', async () => {
  const alice = await open();
  await alice.waitSynced();
  const mine = await alice.send('bob', 'hello bob');
  await alice.waitSent(mine.messageId);
  const connection = server.live[0];
  const items = await Promise.all([messageItem(bob, alice.identity, 'one'), messageItem(bob, alice.identity, 'two')]);
  const added = [];
  alice.on('message', ({ message }) => added.push(message.text));
  const statuses = [];
  alice.on('status', (event) => statuses.push(event.status));
  for (const item of items) server.send(connection, item);
  server.send(connection, items[0]); // a duplicate
  server.send(connection, { type: 'receipt', id: 'r#1', status: 'delivered', messageIds: [mine.messageId], by: 'bob', at: 1 });
  server.send(connection, { type: 'receipt', id: 'r#2', status: 'seen', messageIds: [mine.messageId], by: 'bob', at: 2 });
  const acks = await server.until(() => {
    const ids = server.framesOf('ack').flatMap(({ frame }) => frame.ids);
    return ids.length >= 5 && ids;
  });
  assert.deepEqual(new Set(acks), new Set([items[0].id, items[1].id, 'r#1', 'r#2']));
  assert.ok(server.framesOf('ack').length <= 2, 'acks are batched');
  assert.deepEqual(added, ['one', 'two']);
  assert.deepEqual(statuses, ['delivered', 'seen']);
  assert.equal(alice.messages('bob').find((m) => m.messageId === mine.messageId).status, 'seen');
  // A receipt by someone else for our message to bob changes nothing.
  server.send(connection, { type: 'receipt', id: 'r#3', status: 'seen', messageIds: [mine.messageId], by: 'carol', at: 3 });
});

test('given markSeen, then the peer gets a markSeen frame for what was read, once', async () => {
  const alice = await open();
  await alice.waitSynced();
  const item = await messageItem(bob, alice.identity, 'read me');
  server.send(server.live[0], item);
  await alice.next('message');
  await alice.markSeen('bob');
  await alice.markSeen('bob');
  const seen = await server.until(() => server.framesOf('markSeen').length && server.framesOf('markSeen'));
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0].frame, { action: 'markSeen', to: 'bob', messageIds: [item.messageId] });
});

test('given a paged, batched sync, then the client asks for each page with its cursor and stores every item', async () => {
  const alice = await open('alice', { start: false });
  const pages = [
    await Promise.all([messageItem(bob, alice.identity, 'p1a'), messageItem(bob, alice.identity, 'p1b')]),
    await Promise.all([messageItem(bob, alice.identity, 'p2a')]),
  ];
  server.handlers.sync = (frame, connection) => {
    const page = frame.after === undefined ? 0 : Number(frame.after.slice(1));
    const more = page + 1 < pages.length;
    return [
      { type: 'items', items: pages[page] },
      { type: 'syncDone', count: pages[page].length, more, ...(more ? { cursor: `c${page + 1}` } : {}), epoch: 'e1' },
    ];
  };
  alice.start();
  const synced = await alice.next('synced', () => true, 5000);
  assert.equal(synced.count, 3);
  assert.deepEqual(server.framesOf('sync').map(({ frame }) => frame), [{ action: 'sync', batch: true }, { action: 'sync', after: 'c1', batch: true }]);
  assert.deepEqual(alice.messages('bob').map((m) => m.text), ['p1a', 'p1b', 'p2a']);
  // The first page was acked before the second was asked for.
  const firstAck = server.received.findIndex(({ frame }) => frame.action === 'ack');
  const secondSync = server.received.findIndex(({ frame }) => frame.after === 'c1');
  assert.ok(firstAck >= 0 && firstAck < secondSync);
});

test('given a sync page refused RATE_LIMITED, then the same page is asked for again on the same connection, no sooner than retryAfter', async () => {
  // §3: storage overload (or a range being moved) answers RATE_LIMITED with retryAfter;
  // left alone, the sync would never end on this connection.
  const retryAfter = 600; // beyond the resend backoff (resendCap 400 ms here)
  const alice = await open('alice', { start: false });
  const pages = [[await messageItem(bob, alice.identity, 'p1')], [await messageItem(bob, alice.identity, 'p2')]];
  const asked = [];
  server.handlers.sync = (frame) => {
    asked.push(Date.now());
    if (frame.after === 'c1' && asked.length === 2) return { type: 'error', code: 'RATE_LIMITED', message: 'later', ref: 'sync', retryAfter };
    const page = frame.after === undefined ? 0 : 1;
    const more = page === 0;
    return [
      { type: 'items', items: pages[page] },
      { type: 'syncDone', count: 1, more, ...(more ? { cursor: 'c1' } : {}), epoch: 'e1' },
    ];
  };
  alice.start();
  const synced = await alice.next('synced', () => true, 5000);
  assert.equal(synced.count, 2);
  assert.deepEqual(alice.messages('bob').map((m) => m.text), ['p1', 'p2']);
  const syncs = server.framesOf('sync');
  assert.deepEqual(syncs.map(({ frame }) => frame.after), [undefined, 'c1', 'c1']);
  assert.equal(new Set(syncs.map(({ connection }) => connection)).size, 1);
  assert.ok(asked[2] - asked[1] >= retryAfter, `asked again after ${asked[2] - asked[1]} ms`);
});

test('given a new epoch in syncDone, then every message without a delivered receipt is sent again, byte for byte', async () => {
  let epoch = 'e1';
  server.handlers.sync = () => ({ type: 'syncDone', count: 0, more: false, epoch });
  const alice = await open();
  await alice.waitSynced();
  const delivered = await alice.send('bob', 'delivered');
  const undelivered = await alice.send('bob', 'only sent');
  await alice.waitSent(undelivered.messageId);
  server.send(server.live[0], { type: 'receipt', id: 'r#d', status: 'delivered', messageIds: [delivered.messageId], by: 'bob', at: 1 });
  await alice.next('status');
  epoch = 'e2'; // the cell failed over
  server.live[0].socket.terminate();
  await server.until(() => server.framesOf('sendMessage').length === 3, 5000, 'the resend');
  const texts = server.framesOf('sendMessage').map(({ text, frame }) => [frame.messageId, text]);
  assert.equal(texts[2][0], undelivered.messageId);
  assert.equal(texts[2][1], texts[1][1]);
});

test('given presence subscriptions, then they are renewed on every new connection', async () => {
  const alice = await open();
  await alice.waitSynced();
  const [presence] = await alice.getPresence(['bob'], { subscribe: true });
  assert.deepEqual(presence, { userId: 'bob', online: true, lastSeen: null });
  server.send(server.live[0], { type: 'presence', users: [{ userId: 'bob', online: false, lastSeen: 42 }] });
  assert.equal((await alice.next('presence')).lastSeen, 42);
  server.live[0].socket.terminate();
  await server.until(() => server.framesOf('getPresence').length === 2, 5000, 'the renewal');
  assert.deepEqual(server.framesOf('getPresence')[1].frame, { action: 'getPresence', userIds: ['bob'], subscribe: true });
});

test('given the people alice chats with, then her presence is visible to them only', async () => {
  const alice = await open();
  await alice.waitSynced();
  await server.until(() => server.framesOf('setPresenceVisibility').length === 1);
  assert.deepEqual(server.framesOf('setPresenceVisibility')[0].frame, { action: 'setPresenceVisibility', visibility: 'contacts', add: [] });
  await alice.send('bob', 'hi');
  await alice.send('carol', 'hi');
  // Each is added to the list the server keeps (an edit: never replacing what another
  // device of hers added), read back first.
  await server.until(() => visibility.contacts.length === 2);
  assert.deepEqual(visibility, { visibility: 'contacts', contacts: ['bob', 'carol'] });
  assert.deepEqual(server.framesOf('setPresenceVisibility').slice(1).map(({ frame }) => frame.add), [['bob'], ['carol']]);
  assert.ok(server.framesOf('setPresenceVisibility').every(({ frame }) => !('contacts' in frame)));
});

test('given a choice made before the first connection, then the settings\' default never overtakes it, and the people written to are added under it (§2)', async () => {
  const alice = await open('alice', { start: false });
  await alice.setVisibility('everyone');
  alice.start();
  await alice.waitSynced();
  await alice.send('bob', 'hi');
  await server.until(() => server.framesOf('setPresenceVisibility').some(({ frame }) => frame.add.includes('bob')));
  const sent = server.framesOf('setPresenceVisibility').map(({ frame }) => frame.visibility);
  assert.deepEqual([...new Set(sent)], ['everyone'], 'never the default');
  assert.equal(visibility.visibility, 'everyone');
});

test('given a linked device, then it keeps the user\'s visibility as another device chose it, and a choice made on it holds for all (§2, §8)', async () => {
  const identity = Identity.generate('alice', 'laptop');
  server.deviceSignKeys.set('alice#laptop', identity.publicKeys.signKey);
  const laptop = await open('alice', { identity });
  await laptop.waitSynced();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(server.framesOf('setPresenceVisibility'), [], 'its default is not the user\'s choice');
  await laptop.setVisibility('nobody');
  assert.deepEqual(server.framesOf('setPresenceVisibility').map(({ frame }) => frame), [{ action: 'setPresenceVisibility', visibility: 'nobody', add: [] }]);
  assert.equal(laptop.pendingVisibility, null);
});

test('given a peer whose keys changed, then sending and receiving are refused until trusted', async () => {
  const alice = await open();
  await alice.waitSynced();
  await alice.send('bob', 'first, pinning');
  const impostor = Identity.generate('bob');
  server.handlers.getKeys = () => keysOf(impostor);
  alice.pinning.newConnection(); // as on a new connection: keys are checked again
  const warned = alice.next('keyChanged');
  await assert.rejects(alice.send('bob', 'to the impostor'), (changed) => {
    // The pinned and the offered keys, and the safety numbers both SDKs show.
    assert.equal(changed.name, 'KeyChanged');
    assert.equal(changed.userId, 'bob');
    assert.deepEqual(changed.pinned.toJSON(), bob.publicKeys.toJSON());
    assert.deepEqual(changed.offered.toJSON(), impostor.publicKeys.toJSON());
    assert.equal(changed.pinnedFingerprint, bob.fingerprint());
    assert.equal(changed.offeredFingerprint, impostor.fingerprint());
    return true;
  });
  assert.deepEqual(await warned, { peer: 'bob', pinned: bob.fingerprint(), offered: impostor.fingerprint() });
  await alice.trust('bob', impostor.fingerprint());
  assert.equal(alice.fingerprint('bob'), impostor.fingerprint());
  await alice.send('bob', 'now trusted');
});

test('given a sender whose keys changed, then their messages are held (stored, then acked), kept across a restart, and shown in order once trusted', async () => {
  // Given alice, who pinned bob's keys, and a "bob" with new keys
  const backend = new MemoryBackend();
  const identity = Identity.generate('alice');
  const alice = await open('alice', { identity, backend });
  await alice.waitSynced();
  await alice.send('bob', 'first, pinning');
  const newBob = Identity.generate('bob');
  server.handlers.getKeys = () => keysOf(newBob);

  // When two messages from the new keys arrive
  const items = await Promise.all([messageItem(newBob, alice.identity, 'one'), messageItem(newBob, alice.identity, 'two')]);
  const held = alice.next('held', (event) => event.count === 2);
  for (const item of items) server.send(server.live[0], item);
  assert.deepEqual(await held, { peer: 'bob', count: 2 });

  // Then they are held as ciphertext, stored before the ack, and nothing is shown
  const acked = await server.until(() => {
    const ids = server.framesOf('ack').flatMap(({ frame }) => frame.ids);
    return items.every((item) => ids.includes(item.id)) && ids;
  });
  assert.ok(acked);
  const stored = await backend.all('held');
  assert.deepEqual(stored.map((record) => record.body).sort(), items.map((item) => item.body).sort());
  assert.ok(stored.every((record) => !('text' in record)));
  assert.deepEqual(alice.messages('bob').map((message) => message.text), ['first, pinning']);
  assert.equal(alice.rejected('bob').length, 0);

  // And they survive a restart
  await alice.close();
  const again = await open('alice', { identity, backend });
  await again.waitSynced();
  assert.equal(again.held('bob').length, 2);

  // When alice trusts bob's new safety number, then both are opened and shown, in order
  await assert.rejects(again.trust('bob', bob.fingerprint()), { name: 'FingerprintMismatch' });
  assert.equal(again.held('bob').length, 2);
  await again.trust('bob', newBob.fingerprint());
  // (in the order they were written: these items carry sentAt times of the past)
  assert.deepEqual(again.messages('bob').map((message) => message.text), ['one', 'two', 'first, pinning']);
  assert.equal(again.held('bob').length, 0);
  assert.deepEqual(await backend.all('held'), []);
  // And a copy of one that comes again is a duplicate, acked and not shown twice
  server.send(server.live.at(-1), items[0]);
  await server.until(() => server.framesOf('ack').flatMap(({ frame }) => frame.ids).filter((id) => id === items[0].id).length === 2);
  assert.equal(again.messages('bob').length, 3);
});

test('given an unknown user, then sending to them says so and nothing is stored', async () => {
  const alice = await open();
  await alice.waitSynced();
  await assert.rejects(alice.send('nobody', 'hi'), UnknownUser);
  assert.deepEqual(alice.messages('nobody'), []);
});

test('given a stranger who writes, then they are no contact; writing to them tells the server first, then the message', async () => {
  const alice = await open();
  await alice.waitSynced();
  server.send(server.live[0], await messageItem(carol, alice.identity, 'hi, I am carol'));
  await alice.next('message');
  assert.deepEqual(alice.contacts(), []);
  await alice.send('carol', 'hello carol');
  await server.until(() => server.framesOf('sendMessage').length === 1);
  const order = server.received.map(({ frame }) => frame.action).filter((action) => action === 'setPresenceVisibility' || action === 'sendMessage');
  assert.deepEqual(order, ['setPresenceVisibility', 'setPresenceVisibility', 'sendMessage']);
  assert.deepEqual(server.framesOf('setPresenceVisibility').at(-1).frame.add, ['carol']);
  assert.deepEqual(alice.contacts(), ['carol']);
});

test('given a subscribed peer who looks unknown, then a message from them asks again, once per connection', async () => {
  const alice = await open();
  await alice.waitSynced();
  const [hidden] = await alice.getPresence(['carol'], { subscribe: true });
  assert.deepEqual(hidden, { userId: 'carol', online: false, lastSeen: 1000 });
  server.send(server.live[0], { type: 'presence', users: [{ userId: 'carol', online: false, lastSeen: null }] });
  await alice.next('presence');
  server.send(server.live[0], await messageItem(carol, alice.identity, 'one'));
  server.send(server.live[0], await messageItem(carol, alice.identity, 'two'));
  await server.until(() => alice.messages('carol').length === 2, 5000, 'both messages');
  await server.until(() => server.framesOf('getPresence').length === 2, 5000, 'the second look');
  assert.deepEqual(server.framesOf('getPresence')[1].frame, { action: 'getPresence', userIds: ['carol'], subscribe: true });
  assert.equal(server.framesOf('getPresence').length, 2);
});

test('given a resend after a new epoch refused UNKNOWN_RECIPIENT, then it is kept and tried again backing off (§7), not in a tight loop', async () => {
  let epoch = 'e1';
  server.handlers.sync = () => ({ type: 'syncDone', count: 0, more: false, epoch });
  const alice = await open();
  await alice.waitSynced();
  const sent = await alice.send('bob', 'only sent');
  await alice.waitSent(sent.messageId);
  server.handlers.sendMessage = () => ({ type: 'error', code: 'UNKNOWN_RECIPIENT', message: 'no bob here', ref: sent.messageId });
  epoch = 'e2'; // the cell (bob's too: one server) changed epoch just now
  server.live[0].socket.terminate();
  await server.until(() => server.framesOf('sendMessage').length === 2, 5000, 'the resend');
  await server.until(() => alice.history.own(sent.messageId).retryUntil, 5000, 'kept for a later try');
  const kept = alice.history.own(sent.messageId);
  assert.ok(kept.retryUntil - Date.now() > 23 * 3600 * 1000, 'kept for up to a day');
  await new Promise((resolve) => setTimeout(resolve, 600));
  const sends = server.framesOf('sendMessage').length;
  assert.ok(sends >= 3 && sends <= 5, `tried again, backing off (${sends} sends)`);
  assert.equal(alice.messages('bob')[0].status, 'sent');
});

test('given settings, then getSettings, setBlocked and setVisibility speak §2, and the choice is the user\'s: not sent again by a later client', async () => {
  server.handlers.getSettings = () => ({ type: 'settings', visibility: 'nobody', contacts: [], blocked: ['mallory'] });
  server.handlers.setBlocked = (frame) => ({ type: 'blocked', count: (frame.add ?? []).length });
  const backend = new MemoryBackend();
  const identity = Identity.generate('alice');
  const alice = await open('alice', { identity, backend });
  await alice.waitSynced();
  assert.deepEqual(await alice.getSettings(), { visibility: 'nobody', contacts: [], blocked: ['mallory'] });
  assert.equal(await alice.setBlocked({ add: ['mallory'] }), 1);
  assert.deepEqual(server.framesOf('setBlocked')[0].frame, { action: 'setBlocked', add: ['mallory'] });
  await assert.rejects(alice.setBlocked({ remove: ['NOT valid'] }), TypeError);
  await alice.setVisibility('everyone');
  await server.until(() => server.framesOf('setPresenceVisibility').some(({ frame }) => frame.visibility === 'everyone'));
  await assert.rejects(alice.setVisibility('friends'), TypeError);
  await alice.close();
  const sent = server.framesOf('setPresenceVisibility').length;
  const again = await open('alice', { identity, backend });
  await again.waitSynced();
  assert.equal(again.pendingVisibility, null);
  assert.equal(server.framesOf('setPresenceVisibility').length, sent, 'the server keeps it');
});

test('given a seen mark refused RATE_LIMITED, then it goes again on the same connection, no sooner than retryAfter', async () => {
  const retryAfter = 600; // beyond the resend backoff (resendCap 400 ms here)
  const tried = [];
  server.handlers.markSeen = (frame) => {
    tried.push(Date.now());
    if (tried.length === 1) return { type: 'error', code: 'RATE_LIMITED', message: 'later', ref: 'markSeen', retryAfter };
    return { type: 'seenStored', to: frame.to, messageIds: frame.messageIds, epoch: 'e1' };
  };
  const alice = await open();
  await alice.waitSynced();
  const item = await messageItem(bob, alice.identity, 'read me');
  server.send(server.live[0], item);
  await alice.next('message');
  await alice.markSeen('bob');
  await server.until(() => alice.history.get('bob', item.messageId).seenStored?.epoch === 'e1', 5000, 'seenStored');
  const marks = server.framesOf('markSeen');
  assert.equal(marks.length, 2);
  assert.deepEqual(marks[1].frame, marks[0].frame);
  assert.equal(marks[0].connection, marks[1].connection);
  assert.ok(tried[1] - tried[0] >= retryAfter, `sent again after ${tried[1] - tried[0]} ms`);
});

test('given an ack refused RATE_LIMITED, then the acks go again on the same connection, no sooner than retryAfter', async () => {
  const retryAfter = 600; // beyond the resend backoff (resendCap 400 ms here)
  const tried = [];
  server.handlers.ack = () => {
    tried.push(Date.now());
    if (tried.length === 1) return { type: 'error', code: 'RATE_LIMITED', message: 'later', ref: 'ack', retryAfter };
    return undefined; // an ack taken is not answered
  };
  const alice = await open();
  await alice.waitSynced();
  const item = await messageItem(bob, alice.identity, 'ack me');
  server.send(server.live[0], item);
  await alice.next('message');
  await server.until(() => server.framesOf('ack').length === 2, 5000, 'the ack again');
  const acks = server.framesOf('ack');
  assert.deepEqual(acks[1].frame.ids, acks[0].frame.ids);
  assert.ok(acks[0].frame.ids.includes(item.id));
  assert.equal(acks[0].connection, acks[1].connection);
  assert.ok(tried[1] - tried[0] >= retryAfter, `sent again after ${tried[1] - tried[0]} ms`);
});

test('given every ack refused RATE_LIMITED, then the acks go again at most MAX_ACK_RETRIES times, then wait for the next sync', async () => {
  server.handlers.ack = () => ({ type: 'error', code: 'RATE_LIMITED', message: 'later', ref: 'ack', retryAfter: 50 });
  const alice = await open();
  await alice.waitSynced();
  const item = await messageItem(bob, alice.identity, 'ack me');
  server.send(server.live[0], item);
  await alice.next('message');
  await server.until(() => server.framesOf('ack').length === 1 + MAX_ACK_RETRIES, 5000, 'the retries');
  await new Promise((resolve) => setTimeout(resolve, 1500)); // many resend backoffs here
  assert.equal(server.framesOf('ack').length, 1 + MAX_ACK_RETRIES, 'no more: refused frames count towards a close (§3)');
  assert.equal(server.connections.length, 1);
});

test('given seen marks, then each is kept until its seenStored: sent again on the next connection if unanswered, and after a new epoch (§7)', async () => {
  let epoch = 'e1';
  let answer = false;
  server.handlers.sync = () => ({ type: 'syncDone', count: 0, more: false, epoch });
  server.handlers.markSeen = (frame) => (answer ? { type: 'seenStored', to: frame.to, messageIds: frame.messageIds, epoch } : undefined);
  const alice = await open();
  await alice.waitSynced();
  const item = await messageItem(bob, alice.identity, 'read me');
  server.send(server.live[0], item);
  await alice.next('message');
  // Given a mark the server never answered
  await alice.markSeen('bob');
  await server.until(() => server.framesOf('markSeen').length === 1, 5000, 'the mark');
  assert.equal(alice.history.outstanding().seenMarks, 1);
  // When the connection ends, then the next one sends it again, and its answer is kept
  answer = true;
  server.live[0].socket.terminate();
  await server.until(() => server.framesOf('markSeen').length === 2, 5000, 'the mark again');
  await server.until(() => alice.history.get('bob', item.messageId).seenStored?.epoch === 'e1', 5000, 'seenStored kept');
  assert.equal(alice.history.outstanding().seenMarks, 0);
  // And a reconnect to the same epoch sends nothing more
  server.live[0].socket.terminate();
  await server.until(() => server.connections.length === 3 && server.framesOf('sync').length >= 3, 5000, 'the third sync');
  await alice.waitSynced();
  assert.equal(server.framesOf('markSeen').length, 2);
  // When the cell fails over (a new epoch in syncDone), then the stored mark goes again
  epoch = 'e2';
  server.live[0].socket.terminate();
  await server.until(() => server.framesOf('markSeen').length === 3, 5000, 'the mark after the failover');
  assert.deepEqual(server.framesOf('markSeen')[2].frame, { action: 'markSeen', to: 'bob', messageIds: [item.messageId] });
  await server.until(() => alice.history.get('bob', item.messageId).seenStored?.epoch === 'e2', 5000, 'stored at e2');
});
