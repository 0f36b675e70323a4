// The connection's life against a fake server: backoff, pings, make-before-break, refused
// handshakes. (Following the directory's home cells, §6: directory-client.test.mjs.)

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Identity } from '../sdk/crypto.js';
import { backoffDelay, pingDelay } from '../sdk/util.js';
import { PING_INTERVAL_SECONDS, PING_JITTER_SECONDS } from '../sdk/client-rules.generated.js';
import { stoppedAfterEach } from './support/clients.mjs';

const { serve, client } = stoppedAfterEach();

test('given retries, then the backoff is jittered between half and all of a capped doubling step', () => {
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const step = Math.min(30_000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, 500, 30_000, () => 0), step / 2);
    assert.equal(backoffDelay(attempt, 500, 30_000, () => 1), step);
  }
  const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(3, 500, 30_000)));
  assert.ok(delays.size > 1, 'random, so that clients do not come back together');
});

test('given the default cadence, then a ping waits 540 s give or take 30, under the 10-minute idle limit', () => {
  const interval = PING_INTERVAL_SECONDS * 1000;
  const jitter = PING_JITTER_SECONDS * 1000;
  assert.equal(interval, 540_000);
  assert.equal(pingDelay(interval, () => 0), interval - jitter);
  assert.equal(pingDelay(interval, () => 0.5), interval);
  assert.ok(pingDelay(interval, () => 0.999999) < interval + jitter);
  assert.ok(interval + jitter < 600_000, 'the latest ping is still inside the idle limit');
  // A test's shortened interval gets its jitter shortened in proportion.
  assert.equal(pingDelay(180, () => 0), 170);
  const delays = new Set(Array.from({ length: 20 }, () => pingDelay(interval)));
  assert.ok(delays.size > 1, 'random, so that clients that connected together do not ping together');
});

test('given the server closes the connection, then the client reconnects, going offline meanwhile', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  const states = [];
  alice.on('connection', (status) => states.push(status.state));
  server.live[0].socket.close(1001, 'going away');
  await server.until(() => server.live.length === 1 && server.connections.length === 2, 5000, 'the reconnect');
  await alice.waitSynced();
  assert.deepEqual(states.slice(0, 3), ['offline', 'connecting', 'online']);
});

test('given the server took our presence visibility, then a reconnect does not send it again (the profile keeps it)', async () => {
  const server = await serve({
    handlers: {
      setPresenceVisibility: (frame) => ({ type: 'presenceVisibility', visibility: frame.visibility, count: (frame.contacts ?? []).length }),
    },
  });
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  await server.until(() => server.framesOf('setPresenceVisibility').length === 1, 2000, 'the visibility');
  await new Promise((resolve) => setTimeout(resolve, 100)); // its answer arrives
  server.live[0].socket.close(1001, 'going away');
  await server.until(() => server.live.length === 1 && server.connections.length === 2, 5000, 'the reconnect');
  await alice.waitSynced();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(server.framesOf('setPresenceVisibility').length, 1);
});

test('given a quiet connection, then it pings under the idle limit; an unanswered ping drops it', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url, policy: { pingInterval: 100, pongTimeout: 150 } });
  await alice.waitSynced();
  await server.until(() => server.framesOf('ping').length >= 2, 3000, 'pings');
  server.handlers.ping = () => undefined; // the network ate the answer
  await server.until(() => server.connections.length >= 2, 3000, 'a new connection after the silent one');
});

test('given a connection near its maximum age, then a new one opens before the old one closes', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url, policy: { maxAge: 300 } });
  await alice.waitSynced();
  const states = [];
  alice.on('connection', (status) => states.push(status.state));
  await server.until(() => server.connections.length >= 2, 3000, 'the replacement');
  await server.until(() => !server.connections[0].open, 3000, 'the old one to close');
  assert.ok(!states.includes('offline'), `no offline blip: ${states}`);
  await alice.waitSynced();
  assert.equal(server.framesOf('sync').at(-1).connection, server.connections.at(-1));
});

test('given a refused handshake, then waitOnline says so at once (HTTP status from ws)', async () => {
  const server = await serve();
  server.refuse = 403;
  const alice = await client('alice', { url: server.url });
  await assert.rejects(alice.waitOnline(3000), (error) => error.name === 'HandshakeRefused' && error.status === 403);
});

test('given the server replaces the connection (REPLACED), then the client stays down, says so, keeps what it sends, and starts again when told', async () => {
  const bob = Identity.generate('bob');
  const server = await serve({
    handlers: {
      getKeys: () => ({ type: 'keys', userId: 'bob', ...bob.publicKeys.toJSON() }),
      sendMessage: (frame) => ({ type: 'ack', messageId: frame.messageId, status: 'sent', serverTs: 1 }),
    },
  });
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  await alice.waitSent((await alice.send('bob', 'before')).messageId);
  const replaced = alice.next('replaced', () => true, 3000);
  // API Gateway cannot choose a close code: the error frame alone says why (§3 Closing).
  server.send(server.live[0], { type: 'error', code: 'REPLACED', message: 'a newer connection of this device', ref: null });
  server.live[0].socket.close(1000, '');
  const status = await replaced;
  assert.equal(status.state, 'replaced');
  assert.match(status.error, /REPLACED/);
  assert.equal(alice.status.state, 'replaced');
  await assert.rejects(alice.waitOnline(500), (error) => error.name === 'NotConnected' && /REPLACED/.test(error.message));
  const waiting = await alice.send('bob', 'after');
  await new Promise((resolve) => setTimeout(resolve, 300)); // many backoff delays of FAST_POLICY
  assert.equal(server.connections.length, 1, 'no reconnect: it would replace another connection in turn');
  assert.deepEqual(alice.messages('bob').map((message) => message.status), ['sent', 'pending']);
  alice.start();
  await alice.waitOnline(2000);
  await alice.waitSent(waiting.messageId);
  assert.equal(server.connections.length, 2);
});

test('given a close with code 1008 and reason REPLACED, then the client does not reconnect', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  const replaced = alice.next('replaced', () => true, 3000);
  server.live[0].socket.close(1008, 'REPLACED');
  assert.equal((await replaced).state, 'replaced');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(server.connections.length, 1);
});

test('given device 1 removed this device (DEVICE_REMOVED), then the client stops at once, says why and tries no handshake again', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  const removed = alice.next('deviceRemoved', () => true, 3000);
  // §8: the error frame says it, then the server closes (1008).
  server.send(server.live[0], { type: 'error', code: 'DEVICE_REMOVED', message: 'no longer in the device list', ref: null });
  server.live[0].socket.close(1008, 'DEVICE_REMOVED');
  const event = await removed;
  assert.equal(event.userId, 'alice');
  assert.match(event.error, /DEVICE_REMOVED: this device was removed/);
  assert.equal(alice.status.state, 'removed');
  await new Promise((resolve) => setTimeout(resolve, 300)); // many backoff delays of FAST_POLICY
  assert.equal(server.connections.length, 1, 'no handshake again: it would be refused (403)');
  assert.equal(alice.status.state, 'removed');
  await assert.rejects(alice.waitOnline(300), (error) => error.name === 'NotConnected' && /DEVICE_REMOVED/.test(error.message));
});

test('given the server closes for too many refused frames (TOO_MANY_REFUSED), then the client reconnects only after the pause', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url, policy: { refusedClosePause: 600 } });
  await alice.waitSynced();
  const statuses = [];
  alice.on('connection', (status) => statuses.push(status));
  server.send(server.live[0], { type: 'error', code: 'TOO_MANY_REFUSED', message: 'too many refused frames', ref: null });
  server.live[0].socket.close(1008, 'TOO_MANY_REFUSED');
  const closedAt = Date.now();
  await server.until(() => server.live.length === 1 && server.connections.length === 2, 5000, 'the reconnect');
  assert.ok(Date.now() - closedAt >= 550, `reconnected after ${Date.now() - closedAt} ms, within the pause`);
  const offline = statuses.find((status) => status.state === 'offline');
  assert.ok(offline.retryIn >= 600, `retryIn ${offline.retryIn}`);
  assert.match(offline.error, /TOO_MANY_REFUSED/);
  await alice.waitOnline(2000);
});

test('given MOVED in answer to a ping and no close (a fenced stage), then the client closes and reconnects (§7)', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  // API Gateway answering a ping from the stage of a demoted side: it cannot close.
  server.send(server.live[0], { type: 'error', code: 'MOVED', message: 'this side of the cell is not active', ref: 'ping' });
  await server.until(() => server.live.length === 1 && server.connections.length === 2, 5000, 'the reconnect');
  await alice.waitOnline(2000);
});

test('given the server says MOVED and closes, then the client reconnects as after any loss (§7)', async () => {
  const server = await serve();
  const alice = await client('alice', { url: server.url });
  await alice.waitSynced();
  server.send(server.live[0], { type: 'error', code: 'MOVED', message: 'not the home any more', ref: null });
  server.live[0].socket.close(1012, 'MOVED');
  await server.until(() => server.live.length === 1 && server.connections.length === 2, 5000, 'the reconnect');
  await alice.waitOnline(2000);
});
