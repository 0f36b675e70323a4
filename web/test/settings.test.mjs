// setBlocked and getSettings (§2) in the SDK, against a fake server that keeps one list.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { RequestFailed } from '../sdk/errors.js';
import { FakeServer } from './support/fake-server.mjs';
import { makeClient } from './support/clients.mjs';

let server;
let client;
let blocked;

beforeEach(async () => {
  blocked = [];
  server = await new FakeServer({
    handlers: {
      setBlocked: (frame) => {
        if (frame.userIds) blocked = [...new Set(frame.userIds)];
        const removed = new Set(frame.remove ?? []);
        blocked = [...new Set([...blocked.filter((id) => !removed.has(id)), ...(frame.add ?? [])])];
        if (blocked.length > 2) return { type: 'error', code: 'BAD_REQUEST', message: 'userIds: at most 2', ref: 'setBlocked' };
        return { type: 'blocked', count: blocked.length };
      },
      getSettings: () => ({ type: 'settings', visibility: 'contacts', contacts: ['bob'], blocked: [...blocked].sort() }),
    },
  }).start();
  client = await makeClient('alice', { url: server.url });
  await client.waitSynced();
});

afterEach(async () => {
  await client.close();
  await server.stop();
});

test('given add, remove and userIds, then each edits the list and the count comes back', async () => {
  assert.equal(await client.setBlocked({ add: ['mallory', 'eve'] }), 2);
  assert.equal(await client.setBlocked({ remove: ['eve'] }), 1);
  assert.equal(await client.setBlocked({ userIds: ['trent'] }), 1);
  assert.deepEqual(
    server.framesOf('setBlocked').map(({ frame }) => frame),
    [
      { action: 'setBlocked', add: ['mallory', 'eve'] },
      { action: 'setBlocked', remove: ['eve'] },
      { action: 'setBlocked', userIds: ['trent'] },
    ],
  );
});

test('given getSettings, then visibility, contacts and blocked come back as the server holds them', async () => {
  await client.setBlocked({ add: ['mallory'] });
  assert.deepEqual(await client.getSettings(), { visibility: 'contacts', contacts: ['bob'], blocked: ['mallory'] });
});

test('given what the server would refuse, then a TypeError and nothing is sent', async () => {
  for (const bad of [{ add: ['Mallory'] }, { add: ['a'], userIds: ['b'] }, { add: 'mallory' }, {}]) {
    await assert.rejects(client.setBlocked(bad), TypeError);
  }
  assert.equal(server.framesOf('setBlocked').length, 0);
});

test('given a refusal by the server, then RequestFailed with its code', async () => {
  await assert.rejects(client.setBlocked({ add: ['a', 'b', 'c'] }), (error) => error instanceof RequestFailed && error.code === 'BAD_REQUEST');
});
