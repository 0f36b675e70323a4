// The SDK outside a browser (Node, tests): a WebSocket from the `ws` package that also
// tells the handshake's HTTP status, which browsers keep to themselves.

import WebSocket from 'ws';

import { MAX_MESSAGE_BYTES } from './limits.generated.js';

export function nodeSocket(url) {
  const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES });
  socket.on('error', (error) => {
    const refused = /Unexpected server response: (\d+)/.exec(error.message);
    if (refused) socket.handshakeStatus = Number(refused[1]);
  });
  return socket;
}
