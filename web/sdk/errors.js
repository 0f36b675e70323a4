// Everything the SDK throws. No message here ever contains a key, a signature or a plaintext.

import { MAX_BODY_BYTES } from './limits.generated.js';

export class MessengerError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A peer's public keys are not the ones we pinned: refused until re-verified. It carries what
 * the Python SDK's KeyChanged carries: the keys (`pinned`, `offered`: PeerKeys) and their
 * safety numbers (`pinnedFingerprint`, `offeredFingerprint`), the numbers both clients show.
 */
export class KeyChanged extends MessengerError {
  constructor(userId, pinned, offered) {
    const pinnedFingerprint = pinned.fingerprint();
    const offeredFingerprint = offered.fingerprint();
    super(
      `the keys of ${userId} CHANGED: pinned safety number ${pinnedFingerprint}, the server ` +
        `now gives ${offeredFingerprint}. Nothing is sent to ${userId} and nothing from them ` +
        'is accepted until you compare the new number with them in person or by another ' +
        'channel and, if it matches, trust it',
    );
    this.userId = userId;
    this.pinned = pinned;
    this.offered = offered;
    this.pinnedFingerprint = pinnedFingerprint;
    this.offeredFingerprint = offeredFingerprint;
  }
}

/** `trust` with a safety number that is not the one of the keys the server holds now. */
export class FingerprintMismatch extends MessengerError {
  constructor(userId, actual) {
    super(
      `that safety number does not match the keys the server has for ${userId} (${actual}): ` +
        'nothing was trusted',
    );
    this.userId = userId;
  }
}

export class MessageTooLong extends MessengerError {
  constructor(bodyBytes) {
    super(
      `message too long: ${bodyBytes} bytes once encrypted, the limit is ${MAX_BODY_BYTES} ` +
        'bytes per message; split it into several messages',
    );
    this.bodyBytes = bodyBytes;
  }
}

/** A body that does not open with the sender's pinned key, or is not our plaintext. */
export class UnreadableMessage extends MessengerError {}

/** A frame that breaks the protocol's JSON Schemas: never sent. */
export class InvalidFrame extends MessengerError {
  constructor(kind, problems) {
    super(`${kind} breaks the protocol's schema: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** No open connection right now (the SDK keeps reconnecting in the background). */
export class NotConnected extends MessengerError {}

/**
 * The server refused the connect handshake. `status` is 401 or 403 where the platform
 * tells (Node's `ws`); a browser's WebSocket never sees the status, so there it is null.
 */
export class HandshakeRefused extends NotConnected {
  constructor(status) {
    super(
      status
        ? `the server refused the connection (HTTP ${status}): the user id may be taken by ` +
            "other keys, or this device's clock is off by more than 5 minutes"
        : 'the connection could not be opened',
    );
    this.status = status ?? null;
  }
}

/** The server answered a frame with an `error` frame. */
export class RequestFailed extends MessengerError {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.code = code;
    this.serverMessage = message;
  }
}

/** No such user on this server (UNKNOWN_USER / UNKNOWN_RECIPIENT). */
export class UnknownUser extends RequestFailed {
  constructor(userId, code = 'UNKNOWN_USER') {
    super(code, `no user ${userId} on this server`);
    this.userId = userId;
  }
}

/** The server refused a message for good; it left the outbox as `failed`. */
export class SendRefused extends RequestFailed {}

/** A user's device list does not verify under the account key we pinned for them (§8):
 * as for a key change, nothing is sent to them or accepted from them until `trust`. */
export class DeviceListRefused extends KeyChanged {
  constructor(userId, pinned) {
    super(userId, pinned, pinned);
    this.message = `the device list of ${userId} is not signed by the account key pinned for them: treated as a key change`;
  }
}

/** A link code (§8 `ml1:`) that cannot be read, or is not for this user. */
export class InvalidLinkCode extends MessengerError {}

/** Only device 1 (it holds the account key) may change the device list (§8). */
export class NotPrimaryDevice extends MessengerError {}
