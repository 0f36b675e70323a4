// The SDK's own schema checker (no eval: the page's CSP forbids it) agrees with ajv on
// the schemas of docs/asyncapi.yaml, and the shipped copy of them is not stale.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Identity, sendMessageFrame } from '../sdk/crypto.js';
import { FrameSchemas, PROTOCOL_SCHEMAS } from '../sdk/schema.js';
import { ajvChecker, asyncapiSchemas, frameSchemasV11, v11Schemas } from './support/schemas.mjs';

const alice = Identity.generate('alice');
const bob = Identity.generate('bob');
const valid = [
  JSON.parse(await sendMessageFrame(alice, bob.publicKeys, '01J9Z3ABCDEFGHJKMNPQRSTVWX', 'hi', 1764190000123)),
  { action: 'ack', ids: ['m#alice#1'] },
  { action: 'markSeen', to: 'bob', messageIds: ['01J9Z3ABCDEFGHJKMNPQRSTVWX'] },
  { action: 'sync' },
  { action: 'sync', batch: true, after: 'opaque' },
  { action: 'getPresence', userIds: ['bob'], subscribe: true },
  { action: 'getKeys', userId: 'bob' },
  { action: 'registerPush', platform: 'APNS', token: 'ab'.repeat(32) },
  { action: 'ping' },
  { action: 'setPresenceVisibility', visibility: 'contacts', contacts: ['bob'] },
  { type: 'ack', messageId: '01J9Z3ABCDEFGHJKMNPQRSTVWX', status: 'sent', serverTs: 1 },
  { type: 'receipt', id: 'r#1', status: 'seen', messageIds: ['01J9Z3ABCDEFGHJKMNPQRSTVWX'], by: 'bob', at: 2 },
  { type: 'syncDone', count: 3, more: true, cursor: 'c', epoch: 'e' },
  { type: 'presence', users: [{ userId: 'bob', online: false, lastSeen: null }] },
  { type: 'keys', userId: 'bob', signKey: bob.publicKeys.signKey, boxKey: bob.publicKeys.boxKey },
  { type: 'pong' },
  { type: 'error', code: 'BAD_REQUEST', message: 'no', ref: null },
  {
    type: 'items',
    items: [{ type: 'receipt', id: 'r#2', status: 'delivered', messageIds: ['01J9Z3ABCDEFGHJKMNPQRSTVWX'], by: 'bob', at: 3 }],
  },
  { type: 'presenceVisibility', visibility: 'nobody', count: 0 },
];
// Each breaks one rule.
const invalid = [
  { ...valid[0], messageId: 'short' },
  { ...valid[0], sentAt: -1 },
  { ...valid[0], nonce: 'AAAA' },
  { action: 'ack', ids: [] },
  { action: 'ack', ids: Array.from({ length: 101 }, (_, i) => `id${i}`) },
  { action: 'markSeen', to: 'bob' },
  { action: 'getPresence', userIds: ['bad id'] },
  { action: 'registerPush', platform: 'APNS', token: 'not-hex' },
  { action: 'registerPush', platform: 'WINDOWS', token: 'x' },
  { action: 'nonsense' },
  { type: 'presence', users: [{ userId: 'bob', online: 'yes', lastSeen: null }] },
  { type: 'presence', users: [{ userId: 'bob', online: true, lastSeen: 'today' }] },
  { type: 'error', code: 'WHATEVER', message: 'x', ref: null },
  { type: 'keys', userId: 'bob', signKey: 'short', boxKey: 'short' },
  { type: 'syncDone' },
  { type: 'ack', messageId: '01J9Z3ABCDEFGHJKMNPQRSTVWX', status: 'stored', serverTs: 1 },
];

test('given valid and invalid frames, then the SDK checker and ajv agree on every one', () => {
  const ajv = ajvChecker(v11Schemas());
  const sdk = frameSchemasV11();
  for (const frame of valid) {
    assert.deepEqual(ajv.problems(frame), [], JSON.stringify(frame));
    assert.deepEqual(sdk.problemsOfFrame(frame), [], JSON.stringify(frame));
  }
  for (const frame of invalid) {
    assert.notDeepEqual(ajv.problems(frame), [], JSON.stringify(frame));
    assert.notDeepEqual(sdk.problemsOfFrame(frame), [], JSON.stringify(frame));
  }
});

test('given the shipped schemas, then they are those of docs/asyncapi.yaml', () => {
  const published = asyncapiSchemas();
  assert.deepEqual(PROTOCOL_SCHEMAS.schemas, published.schemas);
  assert.deepEqual(PROTOCOL_SCHEMAS.messages, published.messages);
  const build = fileURLToPath(new URL('../build.mjs', import.meta.url));
  execFileSync(process.execPath, [build, '--check'], { stdio: 'pipe' });
});

test('given a schema keyword the checker does not know, then loading it fails loudly', () => {
  const schemas = { X: { type: 'object', propertyNames: { pattern: '^a' } } };
  assert.throws(() => new FrameSchemas({ schemas, messages: { 'client.x': 'X' } }), /propertyNames is not supported/);
});
