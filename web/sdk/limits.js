// Every number of docs/protocol.md the SDK needs, as messenger_protocol/limits.py has them
// (tests/web/test_node_sdk.py fails if the two disagree).

export const USER_ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
export const CONNECT_NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export const MAX_BODY_BYTES = 24_000;
export const MAX_SENT_AT = 2 ** 53;
export const BOX_NONCE_BYTES = 24;
// What a NaCl Box adds to a plaintext: the 16-byte Poly1305 tag.
export const BOX_OVERHEAD_BYTES = 16;
export const MAX_IDS_PER_FRAME = 100;

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const CONNECT_WINDOW_SECONDS = 300;
export const CONNECT_SIGNING_PREFIX = 'messenger-connect';

export const MAX_FRAME_BYTES = 32 * 1024;
export const MAX_MESSAGE_BYTES = 128 * 1024;
export const IDLE_TIMEOUT_SECONDS = 600;
export const MAX_CONNECTION_SECONDS = 2 * 3600;

// §2 setPresenceVisibility: at most this many contacts; getPresence: subscriptions per connection.
export const MAX_CONTACTS = 1000;
export const MAX_SUBSCRIPTIONS = 1000;
