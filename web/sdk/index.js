// The messenger's JavaScript SDK (docs/protocol.md v1.1): what an app imports.

export { MessengerClient, DEFAULT_SETTINGS, VISIBILITIES } from './client.js';
export { Connection, ConnectionState, DEFAULT_POLICY, browserSocket } from './connection.js';
export { Identity, PeerKeys, fingerprint, normalizeFingerprint, signedConnectQuery, withQuery } from './crypto.js';
export { deviceListVerifies, makeLinkCode, parseLinkCode } from './devices.js';
export { Directory, RefusedDirectory, directoryVerifies, shardOf } from './directory.js';
export { History, MemoryBackend, Status } from './history.js';
export { IndexedDbBackend } from './indexeddb.js';
export { FrameSchemas, PROTOCOL_SCHEMAS } from './schema.js';
export { isUserId, USER_ID_RULE } from './encoding.js';
export * from './errors.js';
export { generateIdentity, identityFromRecord, webCryptoKeysSupported, WebCryptoIdentity } from './webcrypto.js';
