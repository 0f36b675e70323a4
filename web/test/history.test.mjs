// The history's own rules (history.js), on the SDK's in-memory backend.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { History, MemoryBackend, Status } from '../sdk/history.js';

test('given a receipt that comes before our other device\'s copy (§8), then the copy takes its status when it comes', async () => {
  const history = await History.load(new MemoryBackend(), 'alice');
  // bob's delivered, then seen, for a message our phone sent him: its copy not here yet
  assert.deepEqual(await history.applyReceipt('bob', ['m-early'], Status.DELIVERED), []);
  assert.deepEqual(await history.applyReceipt('bob', ['m-early'], Status.SEEN), []);
  assert.deepEqual(await history.applyReceipt('bob', ['m-other'], Status.DELIVERED), []);
  // When the copy comes, it is seen at once, not "sent" for ever
  const copy = await history.addOwnCopy('bob', 'm-early', 'sent from the phone', 5, 10);
  assert.equal(copy.status, Status.SEEN);
  assert.equal(history.get('alice', 'm-early').status, Status.SEEN);
  // And a copy no receipt overtook is sent, as before
  assert.equal((await history.addOwnCopy('bob', 'm-late', 'no receipt yet', 6, 11)).status, Status.SENT);
});
