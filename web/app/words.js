// What the app says about held messages, presence and settings: plain words, no DOM, so
// that node tests read them as a person would.

/** "3 messages from bob are held until you verify bob's new safety number" */
export function heldNotice(peer, count) {
  const messages = count === 1 ? '1 message' : `${count} messages`;
  return `${messages} from ${peer} ${count === 1 ? 'is' : 'are'} held until you verify ${peer}'s new safety number`;
}

/**
 * A peer's presence, or why it is not shown. The server answers a user who does not let
 * us see them exactly as one who does not exist (online: false, lastSeen: null, §2), so
 * the words say what it may mean instead of "offline" or "unknown".
 */
export function presenceText(peer, presence, { connected, when }) {
  if (presence?.online) return 'online';
  if (presence?.lastSeen) return `last seen ${when(presence.lastSeen)}`;
  if (!connected) return 'presence shown once connected';
  if (!presence) return 'presence not asked yet';
  return `presence not shared: ${peer} shows it to their contacts only`;
}

const WHO = {
  everyone: 'Everyone sees when you are online.',
  contacts: 'Only the people you wrote to see when you are online.',
  nobody: 'Nobody sees when you are online.',
};

/** The settings the server holds for us, in words. */
export function visibilityText(visibility, contacts, blocked) {
  const who = WHO[visibility] ?? `Visibility: ${visibility}.`;
  const listed = visibility === 'contacts' ? ` ${contacts.length ? `They are: ${contacts.join(', ')}.` : 'No one yet.'}` : '';
  return `${who}${listed} ${blocked} blocked.`;
}
