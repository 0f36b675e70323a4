// The directory a client trusts (docs/protocol.md §6): verified with the deployment's key,
// never rolled back, never saved unverified, kept across restarts, fetched only when §6
// says (a `dv` above ours: the numbered copy, after the jitter unless needed at once).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Directory, DIRECTORY_META, RefusedDirectory } from '../sdk/directory.js';
import { History, MemoryBackend } from '../sdk/history.js';
import { NotConnected } from '../sdk/errors.js';
import { DIRECTORY_KEY, directoryHost, directoryOf, LOCAL_DIRECTORY_URL, OTHER_KEYS, signed } from './support/directories.mjs';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const ALL = [[0, 4095, 'c0']];
const v12 = JSON.parse(readFileSync(new URL('../../tests/vectors/v12.json', import.meta.url), 'utf8'));

async function directoryAt(host, { history, key = DIRECTORY_KEY, url = LOCAL_DIRECTORY_URL, ...options } = {}) {
  return new Directory(url, { fetch: host.fetch, key, history: history ?? (await History.load(new MemoryBackend(), 'alice')), log: quiet, ...options });
}

test('given a signed directory, then the client takes it, and keeps it in the history', async () => {
  const host = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 3));
  const history = await History.load(new MemoryBackend(), 'alice');
  const directory = await directoryAt(host, { history });
  assert.equal((await directory.home('alice')).url, 'ws://127.0.0.1:1/c0');
  assert.equal(history.getMeta(DIRECTORY_META).document.version, 3);
});

const SPOOFS = {
  unsigned: (document) => {
    const copy = { ...document };
    delete copy.sig;
    return copy;
  },
  'signed by another key': (document) => signed(document, OTHER_KEYS),
  'changed after signing': (document) => ({ ...document, cells: { c0: { url: 'ws://127.0.0.1:2/fake', epoch: 'e#1' } } }),
};

for (const [why, spoofOf] of Object.entries(SPOOFS)) {
  test(`given a directory ${why}, then it is refused, the old one kept and nothing saved (§6)`, async () => {
    // Given a client holding version 1
    const host = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 1));
    const history = await History.load(new MemoryBackend(), 'alice');
    const directory = await directoryAt(host, { history });
    await directory.home('alice');
    // When the directory serves a spoof with a far higher version
    const spoof = spoofOf({ ...host.current, version: 10 ** 15 });
    host.publish(spoof);
    // Then it is refused, on a refresh and as a numbered copy alike
    assert.equal((await directory.home('alice', { refresh: true })).url, 'ws://127.0.0.1:1/c0');
    await directory.learnVersion(spoof.version, { atOnce: true });
    assert.equal(directory.document.version, 1);
    assert.equal(history.getMeta(DIRECTORY_META).document.version, 1);
    // And a client that starts without one refuses it too, and has nothing to connect to
    const fresh = await directoryAt(host);
    await assert.rejects(fresh.home('alice'), NotConnected);
    assert.equal(fresh.history.getMeta(DIRECTORY_META), undefined);
  });
}

test('given a signed directory older than the one held, then it is refused, across restarts too (§6)', async () => {
  const backend = new MemoryBackend();
  const host = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 5));
  const directory = await directoryAt(host, { history: await History.load(backend, 'alice') });
  await directory.home('alice');
  // When the directory serves an older, validly signed version (a replay)
  host.publish(directoryOf({ c0: 'ws://127.0.0.1:2/old' }, ALL, 4));
  // Then it is refused now
  assert.equal((await directory.home('alice', { refresh: true })).url, 'ws://127.0.0.1:1/c0');
  // And after a restart: the kept version 5 is used at once, without a fetch, and 4 refused
  const fetched = host.fetches.length;
  const restarted = await directoryAt(host, { history: await History.load(backend, 'alice') });
  assert.deepEqual(await restarted.home('alice'), { cell: 'c0', url: 'ws://127.0.0.1:1/c0', version: 5 });
  assert.equal(host.fetches.length, fetched, 'a kept directory needs no fetch to connect');
  assert.equal((await restarted.home('alice', { refresh: true })).version, 5);
});

test('given a kept directory our key did not sign, then it is forgotten at the start', async () => {
  const backend = new MemoryBackend();
  const history = await History.load(backend, 'alice');
  await history.setMeta(DIRECTORY_META, { url: LOCAL_DIRECTORY_URL, document: directoryOf({ c0: 'ws://127.0.0.1:2/fake' }, ALL, 99, { keys: OTHER_KEYS }) });
  const host = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 1));
  const directory = await directoryAt(host, { history });
  assert.equal((await directory.home('alice')).url, 'ws://127.0.0.1:1/c0');
  assert.equal(history.getMeta(DIRECTORY_META).document.version, 1);
});

test('given a directory elsewhere than this machine, then only wss:// cells are accepted (§6)', async () => {
  const url = 'https://directory.example.test/prod/directory.json';
  const host = directoryHost(directoryOf({ c0: 'ws://c0.example.test/prod' }, ALL, 1), { url });
  await assert.rejects((await directoryAt(host, { url })).home('alice'), /not wss:\/\//);
  host.publish(directoryOf({ c0: 'wss://c0.example.test/prod' }, ALL, 2));
  assert.equal((await (await directoryAt(host, { url })).home('alice')).url, 'wss://c0.example.test/prod');
});

test('given no key and a directory elsewhere, then every document is refused; on this machine its /directory.key is read and kept', async () => {
  const url = 'https://directory.example.test/prod/directory.json';
  const remote = directoryHost(directoryOf({ c0: 'wss://c0.example.test/prod' }, ALL, 1), { url });
  await assert.rejects((await directoryAt(remote, { url, key: null })).home('alice'), /no directory key/);
  assert.ok(!remote.fetches.some((asked) => asked.endsWith('directory.key')), 'a remote key is never taken from the network');
  const local = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 1));
  const history = await History.load(new MemoryBackend(), 'alice');
  const directory = await directoryAt(local, { key: null, history });
  assert.equal((await directory.home('alice')).url, 'ws://127.0.0.1:1/c0');
  assert.equal(history.getMeta('directoryKey'), DIRECTORY_KEY);
});

test('given a dv above ours, then the numbered copy is fetched once, after the jitter; at once when needed now; never for ours (§6)', async () => {
  const host = directoryHost(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 1));
  const waits = [];
  const directory = await directoryAt(host, { jitter: 60_000, random: () => 0.25, wait: async (ms) => waits.push(ms) });
  await directory.home('alice');
  // A dv naming ours fetches nothing
  await directory.learnVersion(1);
  assert.deepEqual(host.fetches, [LOCAL_DIRECTORY_URL]);
  // Version 2 is published; two frames name it: one fetch of its numbered copy, after a wait
  host.publish(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 2));
  await Promise.all([directory.learnVersion(2), directory.learnVersion(2)]);
  assert.deepEqual(host.fetches.slice(1), ['http://127.0.0.1:9/directory/2.json']);
  assert.deepEqual(waits, [15_000]);
  assert.equal(directory.document.version, 2);
  // Version 3, needed at once: no wait
  host.publish(directoryOf({ c0: 'ws://127.0.0.1:1/c0' }, ALL, 3));
  await directory.learnVersion(3, { atOnce: true });
  assert.deepEqual(waits, [15_000]);
  assert.equal(directory.document.version, 3);
});

test('given the refused vectors of the Python signer, then the SDK\'s directory refuses each and keeps the signed one', async () => {
  const { document, publicKey, url, refused } = v12.directory;
  const host = directoryHost(document, { url, key: publicKey });
  const directory = await directoryAt(host, { url, key: publicKey });
  assert.equal((await directory.home('alice')).version, 7);
  for (const { why, document: spoof } of refused) {
    host.publish(spoof);
    assert.equal((await directory.home('alice', { refresh: true })).version, 7, why);
    assert.equal(directory.document.sig, document.sig, why);
    assert.throws(() => directory.check(spoof), RefusedDirectory, why);
  }
});
