// The web app: a chat on the JavaScript SDK. Keys are made here and kept in IndexedDB;
// the page connects to the WebSocket (or the directory) that config.js names: the server
// that served the page writes it (`messenger local` from the request's origin, the CDK
// stack at deploy). A module, not a fetch: the page's CSP lets it connect to its
// WebSocket and nothing else, not even to its own origin.

import qrcode from 'qrcode-generator';

import {
  generateIdentity, History, identityFromRecord, IndexedDbBackend, isUserId, KeyChanged, MessageTooLong, MessengerClient,
  NotConnected, Status, UnknownUser, USER_ID_RULE,
} from '../sdk/index.js';
import { heldNotice, presenceText, visibilityText } from './words.js';

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

const state = { removed: false, client: null, backend: null, config: null, peer: null, keyWarnings: new Map(), blocked: new Set() };
// The history's meta key for key changes not yet verified: they outlive the page.
const KEY_WARNINGS = 'keyWarnings';

async function loadConfig() {
  const { default: config } = await import('./config.js');
  if (!config?.webSocketUrl && !config?.directoryUrl) throw new Error('config.js names no server');
  return config;
}

async function newClient(identity, { start = true } = {}) {
  const history = await History.load(state.backend, identity.userId);
  const client = new MessengerClient({
    identity,
    history,
    url: state.config.directoryUrl ? undefined : state.config.webSocketUrl,
    directoryUrl: state.config.directoryUrl,
    // The deployment's directory key (§6): a directory it did not sign is refused.
    directoryKey: state.config.directoryKey,
  });
  if (start) client.start();
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
    $('start-busy').hidden = false;
    error.textContent = '';
    // Non-extractable WebCrypto keys where the browser has them (docs/privacy.md).
    const identity = await generateIdentity(userId);
    // Kept before the first connect registers it: keys the server knows are never lost.
    await state.backend.put('identity', IDENTITY_KEY, identity.toRecord());
    const client = await newClient(identity);
    // The server that served this page refuses the handshake of an id registered with
    // other keys: the first refusal says so at once (a browser is never told the status).
    const refused = client.next('connection', (status) => status.state === 'offline', REGISTER_TIMEOUT).then(() => false, () => false);
    const online = client.waitOnline(REGISTER_TIMEOUT).then(() => true, () => false);
    const registered = await Promise.race([online, refused]);
    $('start-busy').hidden = true;
    if (!registered) {
      await client.close();
      await state.backend.delete('identity', IDENTITY_KEY);
      error.textContent = `“${userId}” is taken, or the server refused it: pick another id.`;
      button.disabled = false;
      $('user-id').focus();
      return;
    }
    $('welcome').hidden = true;
    showApp(client);
  });
}

// --- linking this browser to an account (§8) -----------------------------------------

function showLinkThisBrowser() {
  $('link-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const userId = $('link-user-id').value.trim();
    const deviceId = $('link-device-id').value.trim();
    $('link-error').textContent = '';
    let identity;
    try {
      if (!isUserId(userId)) throw new TypeError(`Not a user id: ${USER_ID_RULE}.`);
      if (deviceId === '1') throw new TypeError('Device 1 is your first device: pick another name.');
      identity = await generateIdentity(userId, deviceId);
    } catch (error) {
      $('link-error').textContent = error.message;
      return;
    }
    // Kept before anyone sees the code: the keys it names are this browser's for good.
    await state.backend.put('identity', IDENTITY_KEY, identity.toRecord());
    const client = await newClient(identity, { start: false });
    const code = client.linkCode();
    $('link-code').textContent = code;
    $('link-qr').replaceChildren(qrSvg(code));
    $('link-form').hidden = true;
    $('link-show').hidden = false;
    $('link-done').addEventListener('click', async () => {
      $('link-status').textContent = 'Connecting…';
      client.start();
      try {
        await client.waitOnline(REGISTER_TIMEOUT);
      } catch {
        $('link-status').textContent = 'Not linked yet: add the code on your first device, then try again.';
        return;
      }
      $('welcome').hidden = true;
      showApp(client);
    });
  });
}

/** The code as a QR code: an SVG of dark modules (no inline styles: the page's CSP). */
function qrSvg(text) {
  const code = qrcode(0, 'M');
  code.addData(text);
  code.make();
  const count = code.getModuleCount();
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${count} ${count}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'link code as a QR code');
  svg.setAttribute('shape-rendering', 'crispEdges');
  let path = '';
  for (let row = 0; row < count; row += 1) {
    for (let column = 0; column < count; column += 1) if (code.isDark(row, column)) path += `M${column} ${row}h1v1h-1z`;
  }
  const dark = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  dark.setAttribute('d', path);
  dark.setAttribute('fill', '#000');
  svg.append(dark);
  return svg;
}

// --- linked devices, on device 1 (§8) ---------------------------------------------------

async function renderDevices() {
  const client = state.client;
  const status = $('devices-status');
  $('device-form').hidden = client.deviceId !== '1';
  let list;
  try {
    list = await client.deviceList();
  } catch (error) {
    status.textContent = `Could not read your devices: ${error.message}`;
    return;
  }
  $('device-list').replaceChildren(...list.devices.map((device) => {
    const item = element('li', 'device', device.deviceId === client.deviceId ? `${device.deviceId} (this browser)` : device.deviceId);
    if (client.deviceId === '1' && device.deviceId !== '1') {
      const remove = element('button', 'remove-device', 'Remove');
      remove.type = 'button';
      remove.dataset.device = device.deviceId;
      remove.addEventListener('click', () => changeDevices(() => client.removeDevice(device.deviceId), `Removed ${device.deviceId}.`));
      item.append(remove);
    }
    return item;
  }));
}

async function changeDevices(change, done) {
  const status = $('devices-status');
  status.textContent = 'Saving…';
  try {
    await change();
    status.textContent = done;
  } catch (error) {
    status.textContent = `Not changed: ${error.message}`;
  }
  await renderDevices();
}

function setUpDevices() {
  $('devices').addEventListener('toggle', () => {
    if ($('devices').open) renderDevices();
  });
  $('device-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const code = $('device-code').value;
    changeDevices(async () => {
      const list = await state.client.linkDevice(code);
      $('device-code').value = '';
      return list;
    }, 'Linked.');
  });
}

// --- the app -----------------------------------------------------------------------

function showApp(client) {
  state.client = client;
  $('app').hidden = false;
  $('me').replaceChildren(
    `You are ${client.userId}`,
    element('span', 'my-number', ` · your safety number ${client.fingerprint()}`),
  );
  $('my-safety').textContent = client.fingerprint() ?? '';
  setUpDevices();
  if (client.deviceId !== '1') {
    // A linked device shows the account's number, once it has read the signed list.
    client.deviceList().then(() => {
      $('my-safety').textContent = client.fingerprint();
      $('me').replaceChildren(`You are ${client.userId} (${client.deviceId})`, element('span', 'my-number', ` · your safety number ${client.fingerprint()}`));
    }).catch(() => {});
  }
  client.on('connection', renderBanner);
  client.on('deviceRemoved', () => {
    state.removed = true;
    renderBanner(client.status);
  });
  client.on('message', ({ message }) => {
    renderConversations();
    if (message.peer === state.peer) {
      renderLog();
      if (!message.outgoing) markSeenIfVisible();
    } else if (!message.outgoing) {
      showNotice(message.peer, `New message from ${message.peer}`);
    }
  });
  client.on('held', ({ peer }) => {
    renderConversations();
    if (peer === state.peer) renderHeld();
    else if (client.held(peer).length) showNotice(peer, heldNotice(peer, client.held(peer).length));
  });
  client.on('status', ({ peer }) => peer === state.peer && renderLog());
  client.on('sendFailed', ({ peer }) => peer === state.peer && renderLog());
  client.on('presence', (presence) => presence.userId === state.peer && renderPresence());
  client.on('keyChanged', ({ peer, pinned, offered }) => {
    state.keyWarnings.set(peer, { pinned, offered });
    saveKeyWarnings();
    if (peer === state.peer) {
      renderWarning();
      renderLog();
    }
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
  $('message').addEventListener('keydown', (event) => {
    // Enter sends; Shift+Enter is a new line (and nothing is sent mid-composition).
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendTyped();
    }
  });
  $('message').addEventListener('input', fitComposer);
  // Closing the tab with text typed and not sent asks first (what was sent, and is still
  // waiting for the server, is kept in IndexedDB and goes when the app opens again).
  window.addEventListener('beforeunload', (event) => {
    if ($('message').value.trim()) event.preventDefault();
  });
  $('verify').addEventListener('click', () => toggleVerify());
  $('block').addEventListener('click', () => toggleBlock());
  $('visibility').addEventListener('change', () => changeVisibility($('visibility').value));
  $('settings').addEventListener('toggle', () => $('settings').open && loadSettings());
  // A resize (a phone's keyboard, a rotated screen) keeps the newest message in view.
  new ResizeObserver(() => {
    if (state.stuckToBottom !== false) $('log').scrollTop = $('log').scrollHeight;
  }).observe($('log'));
  $('log').addEventListener('scroll', () => {
    const log = $('log');
    state.stuckToBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
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
  state.keyWarnings = new Map(Object.entries(client.history.getMeta(KEY_WARNINGS) ?? {}));
  $('visibility').value = client.pendingVisibility ?? client.settings.presenceVisibility ?? 'contacts';
  renderBanner(client.status);
  renderConversations();
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (isUserId(fromHash)) openChat(fromHash);
}

function renderBanner(status) {
  if (state.peer) renderPresence();
  const banner = $('banner');
  if (state.removed) {
    banner.hidden = false;
    banner.textContent = `This browser was removed from ${state.client.userId}'s devices: it no longer connects. Link it again from your first device to use it.`;
    return;
  }
  if (status.state === 'online') {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  if (status.state === 'replaced') {
    // Final until started again: reconnecting by itself would close another tab's (§3 Closing).
    const reconnect = element('button', 'banner-action', 'Use here');
    reconnect.type = 'button';
    reconnect.addEventListener('click', () => state.client.start());
    banner.replaceChildren('Opened elsewhere: this connection was closed for a newer one. What you send waits. ', reconnect);
    return;
  }
  banner.textContent =
    status.state === 'connecting' ? 'Connecting… what you send waits and goes out once connected.'
      : 'Offline: reconnecting… what you send waits and goes out once connected.';
}

function renderConversations() {
  const list = $('conversations');
  const conversations = withHeld(state.client.conversations());
  if (!conversations.length) {
    list.replaceChildren(element('li', 'empty', 'No conversations yet. Type a user id in “Chat with” and press Open: your keys are checked and the chat opens.'));
    return;
  }
  list.replaceChildren(
    ...conversations.map(({ peer, last, unread, held }) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('aria-current', String(peer === state.peer));
      const name = element('span', 'peer', peer);
      const badge = element('span', 'unread', unread ? String(unread) : '');
      if (unread) badge.setAttribute('aria-label', `${unread} unread`);
      if (unread) badge.title = `${unread} unread`;
      else badge.hidden = true;
      const previewText = held ? heldNotice(peer, held)
        : last ? `${last.outgoing ? 'You: ' : ''}${last.text}` : 'No messages yet';
      const preview = element('span', 'preview', previewText);
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
  $('message').classList.remove('unsent');
  if ($('notice').dataset.peer === peer) $('notice').hidden = true;
  renderLog();
  renderHeld();
  renderBlock();
  renderPresence();
  renderSafety();
  renderWarning();
  renderConversations();
  $('message').focus();
  markSeenIfVisible();
  try {
    await state.client.peerKeys(peer); // pins on first use; a change shows the warning
  } catch (problem) {
    if (peer !== state.peer) return;
    if (problem instanceof UnknownUser) $('send-error').textContent = `There is no user ${peer} on this server.`;
    else if (!(problem instanceof KeyChanged) && !(problem instanceof NotConnected)) throw problem;
  }
  try {
    await state.client.getPresence([peer], { subscribe: true });
  } catch (problem) {
    if (!(problem instanceof NotConnected)) throw problem;
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
  const warning = state.keyWarnings.get(state.peer);
  const changed = warning
    ? [element('li', 'notice', `The safety number of ${state.peer} changed: it was ${warning.pinned}, the server now gives ${warning.offered}. Nothing goes either way until you verify it.`)]
    : [];
  if (!messages.length) {
    log.replaceChildren(element('li', 'empty', 'No messages yet. Say hello: only you two can read it.'), ...changed);
    return;
  }
  log.replaceChildren(
    ...messages.map((message) => {
      const item = element('li', message.outgoing ? 'mine' : 'theirs');
      item.append(element('span', 'text', message.text));
      const meta = element('span', 'meta', timeOf(message.sentAt));
      meta.title = new Date(message.sentAt).toLocaleString();
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
    ...changed,
  );
  if (atBottom || messages.at(-1)?.outgoing) log.scrollTop = log.scrollHeight;
}

function renderPresence() {
  const presence = state.client.presence(state.peer);
  const element = $('presence');
  const text = presenceText(state.peer, presence, {
    connected: state.client.status.state === 'online',
    when: whenOf,
  });
  element.textContent = text;
  element.title = text;
  element.setAttribute('aria-label', text);
  element.classList.toggle('online', Boolean(presence?.online));
}

function renderSafety() {
  $('safety').textContent = state.client.fingerprint(state.peer) ?? 'not known yet';
  const warning = state.keyWarnings.get(state.peer);
  $('safety-new').hidden = !warning;
  $('safety-new').textContent = warning ? `changed, now ${warning.offered}` : '';
  // On a phone the numbers wait behind "Verify", unless they changed.
  if (warning) toggleVerify(true);
}

function toggleVerify(open = $('verify').getAttribute('aria-expanded') !== 'true') {
  $('verify').setAttribute('aria-expanded', String(open));
  document.querySelector('.chat-head').classList.toggle('verifying', open);
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
  const text = input.value.replace(/^\s*\n|\s+$/g, '');
  const error = $('send-error');
  error.textContent = '';
  if (!text || !state.peer) return;
  input.classList.remove('unsent');
  // Emptied at once, not after the send: what is typed meanwhile is the next message.
  input.value = '';
  fitComposer();
  try {
    await state.client.send(state.peer, text);
  } catch (problem) {
    if (!input.value) {
      input.value = text; // not sent: the text comes back to the composer
      fitComposer();
    }
    if (problem instanceof KeyChanged) {
      input.classList.add('unsent');
      error.textContent = `Not sent: verify the new safety number of ${state.peer} first. Your text is kept here.`;
      renderWarning();
      renderLog();
      renderSafety();
    }
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
  await saveKeyWarnings();
  $('trust-number').value = '';
  $('message').classList.remove('unsent');
  if ($('message').value) $('send-error').textContent = 'Verified. Your text was not sent yet: press Send.';
  renderWarning();
  renderSafety();
  renderHeld();
  renderLog();
  renderConversations();
}

function saveKeyWarnings() {
  return state.client.history.setMeta(KEY_WARNINGS, Object.fromEntries(state.keyWarnings));
}

function withHeld(conversations) {
  const held = new Map();
  for (const record of state.client.held()) held.set(record.sender, (held.get(record.sender) ?? 0) + 1);
  const listed = conversations.map((entry) => ({ ...entry, held: held.get(entry.peer) ?? 0 }));
  for (const [peer, count] of held) {
    if (!listed.some((entry) => entry.peer === peer)) listed.unshift({ peer, last: null, unread: 0, held: count });
  }
  return listed;
}

function renderHeld() {
  const count = state.peer ? state.client.held(state.peer).length : 0;
  $('held').hidden = !count;
  $('held').textContent = count ? `${heldNotice(state.peer, count)}.` : '';
}

function showNotice(peer, text) {
  const notice = $('notice');
  notice.textContent = text;
  notice.dataset.peer = peer;
  notice.hidden = false;
}

function fitComposer() {
  const box = $('message');
  box.style.height = 'auto';
  box.style.height = `${box.scrollHeight + 2}px`;
}

// --- settings and blocking (§2 getSettings, setBlocked) ---------------------------------

async function loadSettings() {
  const status = $('settings-status');
  try {
    const settings = await state.client.getSettings();
    $('visibility').value = settings.visibility;
    state.blocked = new Set(settings.blocked);
    status.textContent = visibilityText(settings.visibility, settings.contacts, settings.blocked.length);
    renderBlock();
  } catch (problem) {
    status.textContent = `Shown as set on this device: the server could not say (${problem.message}).`;
  }
}

async function changeVisibility(visibility) {
  const status = $('settings-status');
  try {
    await state.client.setVisibility(visibility);
    await loadSettings();
  } catch (problem) {
    status.textContent = `Saved here; the server hears it once connected (${problem.message}).`;
  }
}

function renderBlock() {
  const blocked = state.blocked.has(state.peer);
  $('block').textContent = blocked ? 'Unblock' : 'Block';
  $('block').setAttribute('aria-pressed', String(blocked));
}

async function toggleBlock() {
  const peer = state.peer;
  const blocking = !state.blocked.has(peer);
  try {
    await state.client.setBlocked(blocking ? { add: [peer] } : { remove: [peer] });
  } catch (problem) {
    $('send-error').textContent = `Could not ${blocking ? 'block' : 'unblock'} ${peer}: ${problem.message}`;
    return;
  }
  if (blocking) state.blocked.add(peer);
  else state.blocked.delete(peer);
  renderBlock();
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
  if (record) showApp(await newClient(identityFromRecord(record)));
  else {
    showWelcome();
    showLinkThisBrowser();
  }
}

main().catch((problem) => {
  document.body.textContent = `The messenger could not start: ${problem.message}`;
});
