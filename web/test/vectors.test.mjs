// Given the vectors the Python SDK computed (tests/vectors/crypto.json), the JS SDK
// computes the same safety numbers, connect signatures and URLs, plaintexts, boxes, frames
// and shards.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { b64urlDecode, b64urlEncode } from '../sdk/encoding.js';
import {
  boundConnectMessage, canonicalEndpoint, connectMessage, decodePlaintext, encodePlaintext, Identity, openSealed, sendMessageFrame,
  signedConnectQuery, withQuery,
} from '../sdk/crypto.js';
import { directorySigningText, directoryDigest, directoryVerifies, homeCellOf, numberedCopyUrl, shardOf } from '../sdk/directory.js';
import { fromUtf8 } from '../sdk/encoding.js';

const vectors = JSON.parse(readFileSync(new URL('../../tests/vectors/crypto.json', import.meta.url), 'utf8'));
const identityOf = (entry) => new Identity(entry.userId, b64urlDecode(entry.signSeed), b64urlDecode(entry.boxSecret));
const [aliceEntry, bobEntry] = vectors.identities;
const v12 = JSON.parse(readFileSync(new URL('../../tests/vectors/v12.json', import.meta.url), 'utf8'));

test('given the seeds, then the public keys and safety numbers are the Python SDK ones', () => {
  for (const entry of vectors.identities) {
    const identity = identityOf(entry);
    assert.equal(identity.publicKeys.signKey, entry.signKey);
    assert.equal(identity.publicKeys.boxKey, entry.boxKey);
    assert.equal(identity.fingerprint(), entry.fingerprint);
  }
});

test('given the connect vector, then the signed message, query and URL are byte-identical', async () => {
  const { connect } = vectors;
  const alice = identityOf(aliceEntry);
  const query = await signedConnectQuery(alice, connect.nowMs, connect.nonce);
  assert.equal(fromUtf8(connectMessage(alice.userId, query.ts, connect.nonce)), connect.message);
  assert.deepEqual(query, connect.query);
  assert.equal(withQuery(connect.serverUrl, query), connect.url);
});

test('given the v1.2 connect vectors, then each device signs the bound message, query and URL byte-identically (§1)', async () => {
  const { connect } = v12;
  assert.equal(canonicalEndpoint(connect.serverUrl), connect.aud);
  for (const device of connect.devices) {
    const entry = v12.devices.alice.find((candidate) => candidate.deviceId === device.deviceId);
    const identity = new Identity('alice', b64urlDecode(entry.signSeed), b64urlDecode(entry.boxSecret), device.deviceId);
    const { signKey, boxKey, ...query } = await signedConnectQuery(identity, connect.nowMs, connect.nonce, { aud: connect.aud });
    // Device 1 registers (and re-registers) the account keys; a linked device's keys are in the list (§8)
    assert.equal(signKey, device.deviceId === '1' ? identity.publicKeys.signKey : undefined);
    assert.equal(boxKey, device.deviceId === '1' ? identity.publicKeys.boxKey : undefined);
    assert.equal(fromUtf8(boundConnectMessage('alice', device.deviceId, query.ts, connect.nonce, connect.aud)), device.message);
    assert.deepEqual(query, device.query);
    assert.equal(withQuery(connect.aud, query), device.url);
  }
});

test('given the endpoint vectors, then each URL has the Python SDK canonical endpoint (§1 aud)', () => {
  for (const { url, endpoint } of v12.endpoints) assert.equal(canonicalEndpoint(url), endpoint, url);
});

test('given texts, then the plaintexts are the same bytes and read back', () => {
  for (const { text, plaintext } of vectors.plaintexts) {
    assert.equal(b64urlEncode(encodePlaintext(text)), plaintext, JSON.stringify(text));
    assert.equal(decodePlaintext(b64urlDecode(plaintext)), text);
  }
});

test('given the box vector, then the body and the whole frame are byte-identical, and bob opens it', async () => {
  const { box } = vectors;
  const alice = identityOf(aliceEntry);
  const bob = identityOf(bobEntry);
  const frame = await sendMessageFrame(alice, bob.publicKeys, box.messageId, box.text, box.sentAt, b64urlDecode(box.nonce));
  assert.equal(frame, box.frame);
  assert.equal(JSON.parse(frame).body, box.body);
  assert.equal(decodePlaintext(await openSealed(bob, alice.publicKeys, box.body, box.nonce)), box.text);
});

test('given the shard vector, then every user lands on the same shard (§6)', () => {
  for (const [userId, shard] of Object.entries(vectors.shards.users)) {
    assert.equal(shardOf(userId, vectors.shards.shards), shard, userId);
  }
});

test('given the directory vector, then every user has the same home cell (§6)', () => {
  const { document, homes } = vectors.directory;
  for (const [userId, url] of Object.entries(homes)) {
    assert.equal(document.cells[homeCellOf(document, userId)].url, url, userId);
  }
});

test('given the signed directory vector, then its signing text, digest and numbered copy are the Python ones, and it verifies (§6)', () => {
  const { document, publicKey, signingText, digest, url, numberedCopyUrl: copy } = v12.directory;
  assert.equal(directorySigningText(document), signingText);
  assert.equal(b64urlEncode(directoryDigest(document)), digest);
  assert.ok(directoryVerifies(document, publicKey));
  assert.equal(numberedCopyUrl(url, document.version), copy);
});

test('given the refused directory vectors (unsigned, another key, changed after signing), then none verifies (§6)', () => {
  const { publicKey, refused } = v12.directory;
  assert.ok(refused.length >= 5);
  for (const { why, document } of refused) assert.equal(directoryVerifies(document, publicKey), false, why);
});

test('given a box sealed for bob, when carol tries to open it, then it is unreadable', async () => {
  const { box } = vectors;
  const alice = identityOf(aliceEntry);
  const carol = Identity.generate('carol');
  await assert.rejects(() => openSealed(carol, alice.publicKeys, box.body, box.nonce), { name: 'UnreadableMessage' });
});
