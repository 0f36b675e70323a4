// What the web app says about held messages, presence and settings (web/app/words.js).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { heldNotice, presenceText, visibilityText } from '../app/words.js';

const when = () => 'today at 10:00';

test('given held messages, then the notice counts them and says what to do', () => {
  assert.equal(heldNotice('bob', 3), "3 messages from bob are held until you verify bob's new safety number");
  assert.equal(heldNotice('bob', 1), "1 message from bob is held until you verify bob's new safety number");
});

test('given a peer who hides their presence, then the app says why instead of offline or unknown', () => {
  const hidden = { userId: 'bob', online: false, lastSeen: null };
  const text = presenceText('bob', hidden, { connected: true, when });
  assert.match(text, /^presence not shared: bob shows it to their contacts only$/);
  assert.doesNotMatch(text, /offline|unknown/);
  assert.equal(presenceText('bob', { online: true, lastSeen: null }, { connected: true, when }), 'online');
  assert.equal(presenceText('bob', { online: false, lastSeen: 5 }, { connected: true, when }), 'last seen today at 10:00');
  assert.equal(presenceText('bob', null, { connected: false, when }), 'presence shown once connected');
});

test('given the settings the server holds, then they read as words', () => {
  assert.equal(visibilityText('contacts', ['bob', 'carol'], 1), 'Only the people you wrote to see when you are online. They are: bob, carol. 1 blocked.');
  assert.equal(visibilityText('contacts', [], 0), 'Only the people you wrote to see when you are online. No one yet. 0 blocked.');
  assert.equal(visibilityText('nobody', [], 0), 'Nobody sees when you are online. 0 blocked.');
});
