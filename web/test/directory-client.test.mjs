// A client that follows the directory (§6) against fake servers: its home cell, the moves
// of its own and its peers' cells, and when it reads the directory again. (Apart from the
// connection's own life in connection.test.mjs: Node runs the two files side by side.)

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Identity } from '../sdk/crypto.js';
import { checkDirectory, directoryUrlOf, shardOf } from '../sdk/directory.js';
import { DIRECTORY_KEY, directoryHost, directoryOf, LOCAL_DIRECTORY_URL } from './support/directories.mjs';
import { stoppedAfterEach } from './support/clients.mjs';

const { afterTest, serve, client } = stoppedAfterEach();

// Every client below is given the deployment's directory key, as the web app's config gives it.
const WITH_DIRECTORY = { directoryUrl: LOCAL_DIRECTORY_URL, directoryKey: DIRECTORY_KEY };

test('given a directory, then a client connects to its home cell, follows it when it moves, and sends again what was not delivered', async () => {
  const bob = Identity.generate('bob');
  const handlers = () => ({
    getKeys: () => ({ type: 'keys', userId: 'bob', ...bob.publicKeys.toJSON() }),
    sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 1 }),
  });
  const [c0, c1] = [await serve({ handlers: handlers() }), await serve({ handlers: handlers() })];
  const shard = shardOf('alice', 4096);
  const host = directoryHost(directoryOf({ c0: c0.url, c1: c1.url }, [[0, 4095, 'c0']]));
  const alice = await client('alice', { ...WITH_DIRECTORY, fetch: host.fetch });
  await alice.waitSynced();
  assert.equal(c0.connections.length, 1);
  const message = await alice.send('bob', 'before the move');
  await alice.waitSent(message.messageId);
  // The deployment moves alice's shard to c1 (a failover): c0 refuses her from now on.
  host.publish(directoryOf({ c0: c0.url, c1: c1.url }, [[0, shard, 'c1'], ...(shard < 4095 ? [[shard + 1, 4095, 'c0']] : [])], 2));
  c0.refuse = 403;
  c0.live[0].socket.close(1001, 'going away');
  await c1.until(() => c1.live.length === 1, 5000, 'alice at her new home');
  assert.ok(host.fetches.length >= 2, 'the directory was fetched again after the refusal');
  // Stored at c0 but never delivered: c1 gets the very same frame (§7).
  await c1.until(() => c1.framesOf('sendMessage').length === 1, 5000, 'the resend at the new home');
  assert.equal(c1.framesOf('sendMessage')[0].text, c0.framesOf('sendMessage')[0].text);
});

test('given a directory, then the client never polls it: a dv naming ours reads nothing, a newer one in a pong or an ack reads its numbered copy (§6)', async () => {
  let dv = 1;
  const bob = Identity.generate('bob');
  const c0 = await serve({
    handlers: {
      ping: () => ({ type: 'pong', dv }),
      getKeys: () => ({ type: 'keys', userId: 'bob', ...bob.publicKeys.toJSON() }),
      sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 1, dv }),
    },
  });
  const host = directoryHost(directoryOf({ c0: c0.url }, [[0, 4095, 'c0']]));
  const alice = await client('alice', { ...WITH_DIRECTORY, fetch: host.fetch, policy: { pingInterval: 100 }, settings: { directoryJitter: 50 } });
  await alice.waitSynced();
  // Given pongs and acks that name the version the client holds
  await c0.until(() => c0.framesOf('ping').length >= 5, 3000, 'pings');
  await alice.waitSent((await alice.send('bob', 'hello')).messageId);
  assert.deepEqual(host.fetches, [LOCAL_DIRECTORY_URL], 'one read to connect, none on a timer or for our own version');
  // When the deployment publishes version 2 and a pong says so
  host.publish(directoryOf({ c0: c0.url }, [[0, 4095, 'c0']], 2));
  dv = 2;
  // Then the client reads version 2's numbered copy, once
  await c0.until(() => alice.directory.document.version === 2, 3000, 'version 2 taken');
  await c0.until(() => c0.framesOf('ping').length >= 10, 3000, 'more pings');
  assert.deepEqual(host.fetches.slice(1), ['http://127.0.0.1:9/directory/2.json']);
  // And an ack naming version 3 reads version 3's
  host.publish(directoryOf({ c0: c0.url }, [[0, 4095, 'c0']], 3));
  dv = 3;
  await alice.waitSent((await alice.send('bob', 'again')).messageId);
  await c0.until(() => alice.directory.document.version === 3, 3000, 'version 3 taken');
  assert.deepEqual(host.fetches.slice(1), ['http://127.0.0.1:9/directory/2.json', 'http://127.0.0.1:9/directory/3.json']);
  assert.equal(alice.history.getMeta('directory').document.version, 3, 'kept in the history');
});

test('given the page config names the directory by path, then the client fetches it from the page\'s own origin, and refuses a ws:// cell from it', async () => {
  // Given a page served as the deployed web app is (config.js: {directoryUrl: '/directory.json'})
  const c0 = await serve({ handlers: {} });
  const page = 'https://d111111abcdef8.cloudfront.net/index.html';
  const before = Object.getOwnPropertyDescriptor(globalThis, 'location');
  Object.defineProperty(globalThis, 'location', { value: new URL(page), configurable: true });
  afterTest(() => (before ? Object.defineProperty(globalThis, 'location', before) : delete globalThis.location));
  const url = 'https://d111111abcdef8.cloudfront.net/directory.json';
  const host = directoryHost(directoryOf({ c0: c0.url }, [[0, 4095, 'c0']]), { url });

  // When a client starts with it
  const alice = await client('alice', { directoryUrl: '/directory.json', directoryKey: DIRECTORY_KEY, fetch: host.fetch });
  await assert.rejects(alice.waitOnline(500), /not wss:\/\//);

  // Then it fetched the directory next to the page, and refused it: a directory served over
  // the network names wss:// cells only (§6), so it never connected to the ws:// one
  assert.equal(host.fetches[0], url);
  assert.equal(c0.connections.length, 0);
  assert.equal(alice.history.getMeta('directory'), undefined, 'a refused directory is never kept');
});

test('given a directory URL, then an absolute one is kept and a relative one needs a page', () => {
  assert.equal(directoryUrlOf('https://d.example/directory.json', undefined), 'https://d.example/directory.json');
  assert.equal(directoryUrlOf('/directory.json', 'http://127.0.0.1:8080/'), 'http://127.0.0.1:8080/directory.json');
  assert.throws(() => directoryUrlOf('/directory.json', undefined), /no page to resolve it against/);
});

test('given a malformed directory, then it is refused with what is wrong', () => {
  assert.throws(() => directoryOf({ c0: 'ws://x' }, [[0, 100, 'c0']]), /cover/);
  assert.throws(() => directoryOf({ c0: 'ws://x' }, [[0, 4095, 'c9']]), /known cells/);
  assert.throws(() => checkDirectory({ version: '1' }), /integer/);
});

/** A user id like `name` (name, or name-N) whose shard is in [first, last]. */
function idInShards(name, first, last) {
  for (let n = 0; n < 1000; n += 1) {
    const userId = n === 0 ? name : `${name}-${n}`;
    const shard = shardOf(userId, 4096);
    if (first <= shard && shard <= last) return userId;
  }
  throw new Error(`no id like ${name} in shards ${first}-${last}`);
}

test('given the directory moves a peer\'s cell (beyond §7), then what was not delivered to its users goes again, and only that', async () => {
  // Given alice and cat in c1, bob in c0 (c0 has a standby), and the directory naming c0's primary
  const halves = [[0, 2047, 'c0'], [2048, 4095, 'c1']];
  const [alice, cat, bob] = [idInShards('alice', 2048, 4095), idInShards('cat', 2048, 4095), idInShards('bob', 0, 2047)];
  const peers = new Map([cat, bob].map((userId) => [userId, Identity.generate(userId)]));
  const c1 = await serve({
    handlers: {
      getKeys: (frame) => ({ type: 'keys', userId: frame.userId, ...peers.get(frame.userId).publicKeys.toJSON() }),
      sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 1, epoch: 'e#1' }), // every cell's epoch in the directory
    },
  });
  const [c0, c0Standby] = [await serve(), await serve()];
  const host = directoryHost(directoryOf({ c0: c0.url, c1: c1.url }, halves));
  c1.handlers.ping = () => ({ type: 'pong', dv: host.current.version });
  const client0 = await client(alice, { ...WITH_DIRECTORY, fetch: host.fetch, policy: { pingInterval: 50 }, settings: { directoryJitter: 20, presenceVisibility: null } });
  await client0.waitSynced();
  // And her messages to bob and to cat, acked (stored) but not delivered
  for (const [peer, text] of [[bob, 'to bob'], [cat, 'to cat']]) {
    const message = await client0.send(peer, text);
    await client0.waitSent(message.messageId);
  }
  const [toBob, toCat] = c1.framesOf('sendMessage');
  assert.deepEqual([toBob.frame.to, toCat.frame.to], [bob, cat]);
  await new Promise((resolve) => setTimeout(resolve, 200)); // a few pongs naming an unchanged directory
  assert.equal(c1.framesOf('sendMessage').length, 2, 'nothing moved: nothing goes again');

  // When c0 fails over: its url changes, and the directory's version grows (the pongs say so)
  host.publish(directoryOf({ c0: c0Standby.url, c1: c1.url }, halves, 2));

  // Then alice, connected to c1 all along, sends the message to bob again, the very same
  // frame; the one to cat, whose cell did not move, does not go again
  await c1.until(() => c1.framesOf('sendMessage').length === 3, 5000, 'the resend to bob');
  assert.equal(c1.framesOf('sendMessage')[2].text, toBob.text);
  await new Promise((resolve) => setTimeout(resolve, 300)); // more looks at version 2
  assert.equal(c1.framesOf('sendMessage').length, 3, 'one resend, to bob only');
  assert.equal(c1.connections.length, 1);
  assert.equal(c0.connections.length + c0Standby.connections.length, 0);
});

test('given acks with epochs, then a newer directory showing another epoch for the cell that stored a message sends it again, and only it (§7)', async () => {
  // Given alice and cat in c1, bob in c0; c1 stores every message, acked with c1's epoch
  const halves = [[0, 2047, 'c0'], [2048, 4095, 'c1']];
  const [alice, cat, bob] = [idInShards('alice', 2048, 4095), idInShards('cat', 2048, 4095), idInShards('bob', 0, 2047)];
  const peers = new Map([cat, bob].map((userId) => [userId, Identity.generate(userId)]));
  const epochOf = { c0: 'r0#1', c1: 'r1#1' };
  const c1 = await serve({
    handlers: {
      getKeys: (frame) => ({ type: 'keys', userId: frame.userId, ...peers.get(frame.userId).publicKeys.toJSON() }),
      sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 1, epoch: epochOf[frame.to === bob ? 'c0' : 'c1'] }),
    },
  });
  const withEpochs = (version) => directoryOf({ c0: 'wss://c0.example/prod', c1: c1.url }, halves, version, { epochs: epochOf });
  const host = directoryHost(withEpochs(1));
  c1.handlers.ping = () => ({ type: 'pong', dv: host.current.version });
  const client0 = await client(alice, { ...WITH_DIRECTORY, fetch: host.fetch, policy: { pingInterval: 50 }, settings: { directoryJitter: 20, presenceVisibility: null } });
  await client0.waitSynced();
  for (const [peer, text] of [[bob, 'to bob'], [cat, 'to cat']]) {
    const message = await client0.send(peer, text);
    await client0.waitSent(message.messageId);
  }
  const [toBob] = c1.framesOf('sendMessage');
  assert.deepEqual(client0.history.own(toBob.frame.messageId).stored, { epoch: 'r0#1', cell: 'c0', directoryVersion: 1 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(c1.framesOf('sendMessage').length, 2, 'nothing changed: nothing goes again');

  // When c0's epoch changes (same url: a new generation) in directory version 2
  epochOf.c0 = 'r0#2';
  host.publish(withEpochs(2));

  // Then the message to bob (stored by c0 at r0#1) goes again, the very same frame, and
  // its new ack's epoch ends it; the one to cat (c1, unchanged) stays
  await c1.until(() => c1.framesOf('sendMessage').length === 3, 5000, 'the resend to bob');
  assert.equal(c1.framesOf('sendMessage')[2].text, toBob.text);
  await c1.until(() => client0.history.own(toBob.frame.messageId).stored?.epoch === 'r0#2', 3000, 'the new ack kept');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(c1.framesOf('sendMessage').length, 3, 'one resend, to bob only');
});
