// Making SDK clients for tests: fresh identities, memory history, short timings, and every
// frame they receive checked against the protocol's schemas.

import { afterEach } from 'node:test';

import { MessengerClient } from '../../sdk/client.js';
import { Identity } from '../../sdk/crypto.js';
import { History, MemoryBackend } from '../../sdk/history.js';
import { nodeSocket } from '../../sdk/node.js';
import { FakeServer } from './fake-server.mjs';
import { ajvChecker, frameSchemasV11 } from './schemas.mjs';

export const FAST_POLICY = { openTimeout: 2000, backoffBase: 20, backoffCap: 200, tick: 20 };
export const FAST_SETTINGS = { requestTimeout: 2000, resendBase: 150, resendCap: 400, ackDelay: 20 };

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

export async function makeClient(userId, { identity = Identity.generate(userId), backend = new MemoryBackend(), policy, settings, schemas = frameSchemasV11(), start = true, ...options } = {}) {
  const history = await History.load(backend, userId);
  const checker = ajvChecker();
  const client = new MessengerClient({
    identity,
    history,
    createSocket: nodeSocket,
    policy: { ...FAST_POLICY, ...policy },
    settings: { ...FAST_SETTINGS, ...settings },
    schemas,
    checkReceived: (frame) => {
      if ('type' in frame) checker.check(frame);
    },
    log: quiet,
    ...options,
  });
  if (start) client.start();
  return client;
}

// A test file's `serve` (a started FakeServer) and `client` (makeClient), each stopped or
// closed after the test that made it, last first, with whatever it gave `afterTest`.
export function stoppedAfterEach() {
  const cleanup = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()();
  });
  return {
    afterTest(undo) {
      cleanup.push(undo);
    },
    async serve(options) {
      const server = await new FakeServer(options).start();
      cleanup.push(() => server.stop());
      return server;
    },
    async client(userId, options) {
      const made = await makeClient(userId, options);
      cleanup.push(() => made.close());
      return made;
    },
  };
}
