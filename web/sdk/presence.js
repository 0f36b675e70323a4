// Who is online: answers to getPresence, the last known state of each user, subscriptions;
// and who may see us (setPresenceVisibility), as client/messenger_client/presence.py does.
//
// Every `presence` frame (an answer, or a change we subscribed to) updates what we know and
// becomes a 'presence' event. Subscriptions end with the connection on the server, so they
// are renewed on every new connection.
//
// Who may see us is the user's setting, shared by all their devices (§2, §8): a device adds
// the people it writes to (`add`, never replacing the list, so that no device drops a
// contact another just added), on a new connection before anything of ours goes out and
// when we write to someone new, before that message (so that they may see us by the time it
// reaches them); a choice (everyone, contacts, nobody) made on one device holds for all.
//
// A peer we subscribed to may not let us see them (we are not their contact yet): they look
// unknown, and the server records no subscription. When a message from them comes, they may
// just have made us a contact, so we ask again (once per peer per connection).

import { checkUserId } from './encoding.js';
import { MAX_IDS_PER_FRAME, MAX_SUBSCRIPTIONS_PER_CONNECTION } from './limits.generated.js';
import { chunks } from './util.js';

export class PresenceTracker {
  /**
   * @param {Connection} connection
   * @param {Replies} replies for getPresence and setPresenceVisibility
   * @param {(type: string, event: object) => void} publish the client's events
   */
  constructor(connection, replies, publish) {
    this.connection = connection;
    this.replies = replies;
    this.publish = publish;
    this.subscriptions = new Set();
    this.known = new Map();
    // Who the server's contact list holds, as far as we know (null: not read yet from this
    // home). The list is the user's, kept on their profile whatever connection comes next,
    // so a reconnect sends nothing; a new home cell is asked again.
    this.listed = null;
    this.setting = Promise.resolve(); // the setting being made, if any (#oneAtATime)
    this.askedAgain = new Set(); // hidden peers asked again on this connection
  }

  /** The presence of each user now, in the order asked; with `subscribe`, their changes
   * follow (as 'presence' events) on this and every later connection. */
  async get(userIds, { subscribe }) {
    const wanted = [...new Set(userIds)];
    wanted.forEach(checkUserId);
    if (subscribe) {
      for (const userId of wanted) {
        if (this.subscriptions.size < MAX_SUBSCRIPTIONS_PER_CONNECTION) this.subscriptions.add(userId);
      }
    }
    for (const chunk of chunks(wanted, MAX_IDS_PER_FRAME)) {
      // The answer updates what we know like any presence frame (`update`).
      await this.replies.request({ action: 'getPresence', userIds: chunk, subscribe }, lists(chunk));
    }
    return wanted.map((userId) => this.known.get(userId)).filter(Boolean);
  }

  /** The last known presence of a user (null: never asked about). */
  lastKnown(userId) {
    return this.known.get(userId) ?? null;
  }

  /** A `presence` frame arrived: remember each user's state and tell the app. */
  update(frame) {
    if (!Array.isArray(frame.users)) return;
    for (const user of frame.users) {
      if (!user || typeof user.userId !== 'string') continue;
      const presence = {
        userId: user.userId,
        online: user.online === true,
        lastSeen: Number.isInteger(user.lastSeen) ? user.lastSeen : null,
      };
      this.known.set(presence.userId, presence);
      this.publish('presence', presence);
    }
  }

  /** Set who may see the user, for every device of theirs (§2, §8): `visibility` is the
   * user's, and our contacts are added to the list the server keeps, never replacing the
   * people the user's other devices added. Its answer, or null when `unless()`, asked
   * once it is this call's turn, says there is nothing to do. */
  async choose(visibility, contacts, { unless = null } = {}) {
    return this.#oneAtATime(() => (unless?.() ? null : this.#set(visibility, [...contacts])));
  }

  /** Make sure the server's contact list holds `contacts`, under the setting in effect
   * (which another device of the user may have chosen): the list is read back
   * (`getSettings`) once per home, and only the missing are added. Its answer, or null
   * when nothing had to be sent. */
  async addContacts(contacts) {
    const wanted = [...new Set(contacts)];
    if (!wanted.length) return null;
    return this.#oneAtATime(async () => {
      if (this.listed && wanted.every((userId) => this.listed.has(userId))) return null;
      const settings = await this.replies.request({ action: 'getSettings' }, (reply) => reply.type === 'settings');
      this.listed = new Set(settings.contacts);
      const missing = wanted.filter((userId) => !this.listed.has(userId));
      return missing.length ? this.#set(settings.visibility, missing) : null;
    });
  }

  /** One setting at a time: a choice never lands between another call's read and write. */
  #oneAtATime(work) {
    const done = this.setting.then(work, work);
    this.setting = done.catch(() => {});
    return done;
  }

  async #set(visibility, add) {
    // Always an edit (`add`, even empty): a `contacts` list would replace the user's.
    const frame = { action: 'setPresenceVisibility', visibility, add: [...add].sort() };
    const answer = await this.replies.request(frame, (reply) => reply.type === 'presenceVisibility');
    this.listed = new Set([...(this.listed ?? []), ...add]);
    return answer;
  }

  /** A new connection: its subscriptions are still to be made (the setting is the
   * profile's, and stays). */
  newConnection() {
    this.askedAgain.clear();
  }

  /** Our home cell changed (§7): it may not have what the old one took; ask again. */
  homeMoved() {
    this.listed = null;
  }

  /** On a new connection: subscribe again (the answers refresh what we know). */
  renewSubscriptions() {
    for (const chunk of chunks([...this.subscriptions], MAX_IDS_PER_FRAME)) {
      this.connection.send({ action: 'getPresence', userIds: chunk, subscribe: true });
    }
  }

  /** A message from `userId` arrived: if we subscribed to them but they look unknown, ask
   * again (subscribing): they may have made us a contact by writing. NotConnected when
   * offline (the next connection subscribes anew). */
  messageFrom(userId) {
    const known = this.known.get(userId);
    const hidden = known && !known.online && known.lastSeen === null;
    if (!hidden || !this.subscriptions.has(userId) || this.askedAgain.has(userId)) return;
    this.askedAgain.add(userId);
    this.connection.send({ action: 'getPresence', userIds: [userId], subscribe: true });
  }
}

/** Whether a `presence` frame lists exactly these users: the answer to asking about them. */
function lists(userIds) {
  const asked = new Set(userIds);
  return (frame) =>
    frame.type === 'presence' &&
    Array.isArray(frame.users) &&
    frame.users.length === asked.size &&
    frame.users.every((user) => asked.has(user?.userId));
}
