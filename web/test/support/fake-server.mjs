// A small fake of the messenger's server for the SDK's unit tests: a real WebSocket
// server on loopback that checks the signed connect (docs/protocol.md §1) like the real one,
// records every frame it receives (each checked against the protocol's schemas), and
// answers the way each test tells it to. Protocol features the local stack does not have
// yet (paged and batched sync, setPresenceVisibility, cells, epochs) are tested here.

import { createServer } from 'node:http';

import nacl from 'tweetnacl';
import { WebSocketServer } from 'ws';

import { b64urlDecode } from '../../sdk/encoding.js';
import { boundConnectMessage, canonicalEndpoint, connectMessage } from '../../sdk/crypto.js';
import { ajvChecker } from './schemas.mjs';

export class FakeServer {
  /** Handlers by action: `(frame, connection, server) => answer | undefined`. */
  constructor({ handlers = {}, checker = ajvChecker() } = {}) {
    this.handlers = { ping: () => ({ type: 'pong' }), sync: () => ({ type: 'syncDone', count: 0, more: false, epoch: 'e1' }), ...handlers };
    this.checker = checker;
    this.received = [];
    this.connections = [];
    this.connects = [];
    this.users = new Map();
    // Linked devices' sign keys (§8), by `${userId}#${deviceId}`: what their list says.
    this.deviceSignKeys = new Map();
    this.refuse = null; // a status code to answer every handshake with
    this.waiters = [];
  }

  async start() {
    this.http = createServer((request, response) => response.writeHead(404).end());
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on('upgrade', (request, socket, head) => this.#upgrade(request, socket, head));
    await new Promise((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    this.url = `ws://127.0.0.1:${this.http.address().port}/test`;
    return this;
  }

  async stop() {
    for (const connection of this.connections) connection.socket.terminate();
    this.wss.close();
    await new Promise((resolve) => this.http.close(resolve));
  }

  #upgrade(request, socket, head) {
    const reached = new URL(request.url, `ws://${request.headers.host}`);
    const query = Object.fromEntries(reached.searchParams);
    const status = this.refuse ?? this.#verify(query, canonicalEndpoint(`ws://${request.headers.host}${reached.pathname}`));
    if (status !== 101) {
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = { socket: ws, userId: query.userId, query, open: true };
      this.connections.push(connection);
      this.connects.push(query);
      ws.on('message', (data) => this.#receive(connection, String(data)));
      ws.on('close', () => {
        connection.open = false;
      });
      this.#wake();
    });
  }

  /** 101, or the status the real server would refuse with; `endpoint` is where it was reached. */
  #verify(query, endpoint) {
    const { userId, ts, nonce, sig, signKey, boxKey, aud, deviceId = '1' } = query;
    if (!userId || !ts || !nonce || !sig) return 401;
    // §1: a query bound to another endpoint is refused, as a cell refuses one relayed to it.
    if (aud !== undefined && aud !== endpoint) return 403;
    const registered = this.users.get(userId);
    const key = deviceId === '1' ? registered?.signKey ?? signKey : this.deviceSignKeys.get(`${userId}#${deviceId}`);
    if (!key) return 403;
    if (registered && signKey && (signKey !== registered.signKey || boxKey !== registered.boxKey)) return 403;
    const message = aud === undefined ? connectMessage(userId, ts, nonce) : boundConnectMessage(userId, deviceId, ts, nonce, aud);
    const verifies = nacl.sign.detached.verify(message, b64urlDecode(sig), b64urlDecode(key));
    if (!verifies || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return 403;
    if (!registered) this.users.set(userId, { signKey, boxKey });
    return 101;
  }

  #receive(connection, text) {
    const frame = JSON.parse(text);
    this.checker.check(frame);
    this.received.push({ frame, text, connection });
    const answer = this.handlers[frame.action]?.(frame, connection, this);
    for (const reply of [answer].flat()) if (reply) this.send(connection, reply);
    this.#wake();
  }

  /** Send a frame (checked against the schemas first) on a connection. */
  send(connection, frame) {
    this.checker.check(frame);
    if (connection.open) connection.socket.send(JSON.stringify(frame));
  }

  get live() {
    return this.connections.filter((connection) => connection.open);
  }

  framesOf(action) {
    return this.received.filter(({ frame }) => frame.action === action);
  }

  /** Until `condition()` is truthy (checked after every event), or fail after `ms`. */
  async until(condition, ms = 5000, what = 'the condition') {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = condition();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  #wake() {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((resolve) => resolve());
  }
}
