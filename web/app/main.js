// The web app: a chat on the JavaScript SDK. Keys are made here and kept in IndexedDB;
// the page connects to the WebSocket (or the directory) that config.js names: the server
// that served the page writes it (`messenger local` from the request's origin, the CDK
// stack at deploy). A module, not a fetch: the page's CSP lets it connect to its
// WebSocket and nothing else, not even to its own origin.

import {
  History, Identity, IndexedDbBackend, isUserId, KeyChanged, MessageTooLong, MessengerClient,
  NotConnected, Status, UnknownUser, USER_ID_RULE,
} from '../sdk/index.js';

const IDENTITY_KEY = 'me';
const REGISTER_TIMEOUT = 15_000;
const $ = (id) => document.getElementById(id);

const MARKS = {
  [Status.PENDING]: ['…', 'sending'],
  [Status.SENT]: ['✓', 'sent'],
  [Status.DELIVERED]: ['✓✓', 'delivered'],
  [Status.SEEN]: ['✓✓', 'seen'],
  [Status.FAILED]: ['!', 'not sent'],
};

const state = { client: null, backend: null, config: null, peer: null, keyWarnings: new Map() };

async function loadConfig() {
  const { default: config } = await import('./config.js');
  if (!config?.webSocketUrl && !config?.directoryUrl) throw new Error('config.js names no server');
  return config;
}

async function newClient(identity) {
  const history = await History.load(state.backend, identity.userId);
  const client = new MessengerClient({
    identity,
    history,
    url: state.config.directoryUrl ? undefined : state.config.webSocketUrl,
    directoryUrl: state.config.directoryUrl,
  });
  client.start();
  return client;
}

// --- first visit -------------------------------------------------------------------

function showWelcome() {
  $('welcome').hidden = false;
  $('user-id').focus();
  $('start-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const userId = $('user-id').value.trim();
    const error = $('start-error');
    error.textContent = '';
    if (!isUserId(userId)) {
      error.textContent = `Not a user id: ${USER_ID_RULE}.`;
      return;
    }
    const button = event.submitter ?? $('start-form').querySelector('button');
    button.disabled = true;
    error.textContent = '';
    const identity = Identity.generate(userId);
    // Kept before the first connect registers it: keys the server knows are never lost.
    await state.backend.put('identity', IDENTITY_KEY, identity.toRecord());
    const client = await newClient(identity);
    try {
      await client.waitOnline(REGISTER_TIMEOUT);
    } catch {
      await client.close();
      await state.backend.delete('identity', IDENTITY_KEY);
      error.textContent = `Could not register ${userId}: the id may be taken, or the server cannot be reached.`;
      button.disabled = false;
      return;
    }
    $('welcome').hidden = true;
    showApp(client);
  });
}

// --- the app -----------------------------------------------------------------------

function showApp(client) {
  state.client = client;
  $('app').hidden = false;
  $('me').textContent = `You are ${client.userId} · your safety number ${client.fingerprint()}`;
  client.on('connection', renderBanner);
  client.on('message', ({ message }) => {
    renderConversations();
    if (message.peer === state.peer) {
      renderLog();
      if (!message.outgoing) markSeenIfVisible();
    }
  });
  client.on('status', ({ peer }) => peer === state.peer && renderLog());
  client.on('sendFailed', ({ peer }) => peer === state.peer && renderLog());
  client.on('presence', (presence) => presence.userId === state.peer && renderPresence());
  client.on('keyChanged', ({ peer, pinned, offered }) => {
    state.keyWarnings.set(peer, { pinned, offered });
    if (peer === state.peer) renderWarning();
  });
  client.on('rejected', () => renderConversations());
  client.on('synced', () => renderConversations());
  document.addEventListener('visibilitychange', markSeenIfVisible);
  $('open-form').addEventListener('submit', (event) => {
    event.preventDefault();
    openChat($('peer').value.trim());
  });
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    sendTyped();
  });
  $('trust-form').addEventListener('submit', (event) => {
    event.preventDefault();
    trustTyped();
  });
  $('back').addEventListener('click', () => {
    state.peer = null;
    document.body.classList.remove('chat-open');
    $('chat').hidden = true;
    history.replaceState(null, '', location.pathname);
    renderConversations();
  });
  renderBanner(client.status);
  renderConversations();
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (isUserId(fromHash)) openChat(fromHash);
}

function renderBanner(status) {
  const banner = $('banner');
  if (status.state === 'online') {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.textContent =
    status.state === 'connecting' ? 'Connecting… what you send waits and goes out once connected.'
      : 'Offline: reconnecting… what you send waits and goes out once connected.';
}

function renderConversations() {
  const list = $('conversations');
  list.replaceChildren(
    ...state.client.conversations().map(({ peer, last, unread }) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('aria-current', String(peer === state.peer));
      const name = element('span', 'peer', peer);
      const badge = element('span', 'unread', unread ? String(unread) : '');
      if (unread) badge.setAttribute('aria-label', `${unread} unread`);
      else badge.hidden = true;
      const preview = element('span', 'preview', last ? `${last.outgoing ? 'You: ' : ''}${last.text}` : 'No messages yet');
      button.append(name, badge, preview);
      button.addEventListener('click', () => openChat(peer));
      item.append(button);
      return item;
    }),
  );
}

async function openChat(peer) {
  const error = $('open-error');
  error.textContent = '';
  if (!isUserId(peer)) {
    error.textContent = `Not a user id: ${USER_ID_RULE}.`;
    return;
  }
  if (peer === state.client.userId) {
    error.textContent = 'That is you: pick someone else to chat with.';
    return;
  }
  state.peer = peer;
  $('peer').value = '';
  $('chat').hidden = false;
  document.body.classList.add('chat-open');
  history.replaceState(null, '', `#${encodeURIComponent(peer)}`);
  $('chat-title').textContent = peer;
  $('log').setAttribute('aria-label', `Conversation with ${peer}`);
  $('send-error').textContent = '';
  renderLog();
  renderPresence();
  renderSafety();
  renderWarning();
  renderConversations();
  $('message').focus();
  markSeenIfVisible();
  try {
    await state.client.peerKeys(peer); // pins on first use; a change shows the warning
    await state.client.getPresence([peer], { subscribe: true });
  } catch (problem) {
    if (peer !== state.peer) return;
    if (problem instanceof UnknownUser) $('send-error').textContent = `There is no user ${peer} on this server.`;
    else if (!(problem instanceof KeyChanged) && !(problem instanceof NotConnected)) throw problem;
  }
  if (peer === state.peer) {
    renderSafety();
    renderConversations();
  }
}

function renderLog() {
  const messages = state.client.messages(state.peer);
  const log = $('log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  if (!messages.length) {
    log.replaceChildren(element('li', 'empty', 'No messages yet. Say hello: only you two can read it.'));
    return;
  }
  log.replaceChildren(
    ...messages.map((message) => {
      const item = element('li', message.outgoing ? 'mine' : 'theirs');
      item.append(element('span', 'text', message.text));
      const meta = element('span', 'meta', timeOf(message.sentAt));
      if (message.outgoing) {
        const [symbol, name] = MARKS[message.status];
        const mark = element('span', `mark ${message.status}`, symbol);
        mark.setAttribute('role', 'img');
        mark.setAttribute('aria-label', name);
        mark.title = message.error ?? name;
        meta.append(mark);
      }
      item.append(meta);
      return item;
    }),
  );
  if (atBottom || messages.at(-1)?.outgoing) log.scrollTop = log.scrollHeight;
}

function renderPresence() {
  const presence = state.client.presence(state.peer);
  const element = $('presence');
  let text = 'last seen: unknown';
  if (presence?.online) text = 'online';
  else if (presence?.lastSeen) text = `last seen ${whenOf(presence.lastSeen)}`;
  element.textContent = text;
  element.setAttribute('aria-label', text);
  element.classList.toggle('online', Boolean(presence?.online));
}

function renderSafety() {
  $('safety').textContent = state.client.fingerprint(state.peer) ?? 'not known yet';
}

function renderWarning() {
  const warning = state.keyWarnings.get(state.peer);
  $('warning').hidden = !warning;
  if (!warning) return;
  $('warning-text').textContent =
    `Warning: the keys of ${state.peer} changed. Nothing is sent to ${state.peer} and nothing from them ` +
    `is accepted until you compare safety numbers with ${state.peer} in person or by another channel. ` +
    `Pinned: ${warning.pinned}. The server now gives: ${warning.offered}. If ${state.peer} reads you ` +
    'the new number, type it here to trust it.';
}

async function sendTyped() {
  const input = $('message');
  const text = input.value.trim();
  const error = $('send-error');
  error.textContent = '';
  if (!text || !state.peer) return;
  try {
    await state.client.send(state.peer, text);
    input.value = '';
  } catch (problem) {
    if (problem instanceof KeyChanged) renderWarning();
    else if (problem instanceof MessageTooLong) error.textContent = problem.message;
    else if (problem instanceof UnknownUser) error.textContent = `There is no user ${state.peer} on this server.`;
    else if (problem instanceof NotConnected) error.textContent = `Cannot reach the server to fetch the keys of ${state.peer}; try again once online.`;
    else throw problem;
  }
  renderSafety();
  renderConversations();
}

async function trustTyped() {
  const peer = state.peer;
  try {
    await state.client.trust(peer, $('trust-number').value);
  } catch (problem) {
    $('warning-text').textContent = problem.message;
    return;
  }
  state.keyWarnings.delete(peer);
  $('trust-number').value = '';
  renderWarning();
  renderSafety();
}

async function markSeenIfVisible() {
  if (!state.peer || document.visibilityState !== 'visible') return;
  const ids = await state.client.markSeen(state.peer);
  if (ids.length) renderConversations();
}

// --- helpers -----------------------------------------------------------------------

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function whenOf(ms) {
  const date = new Date(ms);
  const today = new Date().toDateString() === date.toDateString();
  return today ? `today at ${timeOf(ms)}` : date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

async function main() {
  state.backend = await IndexedDbBackend.open();
  state.config = await loadConfig();
  const record = await state.backend.get('identity', IDENTITY_KEY);
  if (record) showApp(await newClient(Identity.fromRecord(record)));
  else showWelcome();
}

main().catch((problem) => {
  document.body.textContent = `The messenger could not start: ${problem.message}`;
});
