"""Every number and pattern of docs/protocol.md, in one place.

Patterns are written for `re.fullmatch` and for JSON Schema's `pattern` alike: anchored
with ^...$ (JSON Schema searches), and matched whole in Python (where `$` would let a
trailing newline in).
"""

from __future__ import annotations

from messenger_protocol.names import PushPlatform

# --- ids -------------------------------------------------------------------------------
# Lowercase only, and never starting with a dot, dash or underscore: people confuse
# case, and dots alone read as paths (§1).
USER_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
CONNECT_NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
BASE64URL_PATTERN = r"^[A-Za-z0-9_-]*$"
# Queue item ids are the server's own and opaque to clients: any id that is not in the
# caller's queue is ignored, so an ack only refuses what cannot be an id at all.
MAX_ITEM_ID_CHARS = 256
# A sync cursor is the server's own, opaque to clients, who hand it back unchanged.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,256}$"
# The name of a cell's generation (§6, §7): in the directory, and in syncDone, ack and
# seenStored. The functions' configuration still takes up to MAX_EPOCH_CHARS printable
# characters for the region part of it; the wire takes EPOCH_PATTERN.
EPOCH_PATTERN = r"^[A-Za-z0-9_.:#-]{1,64}$"
MAX_EPOCH_CHARS = 128
# A cell's id in the directory and the shard map (§6): 1-32 of a-z 0-9 -, the first not a dash.
CELL_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
# Device-list and directory versions, and `dv`: integers a JavaScript client holds exactly.
MAX_VERSION = 2**53

# --- messages --------------------------------------------------------------------------
MAX_BODY_BYTES = 24_000
MAX_SENT_AT = 2**53  # the largest integer a JavaScript client holds exactly
BOX_NONCE_BYTES = 24
MAX_IDS_PER_FRAME = 100
# One sync answers one page of at least this many items (or what is left, if fewer).
MIN_SYNC_PAGE_ITEMS = 100

# --- presence ------------------------------------------------------------------------------
# Subscriptions one connection may hold (§3); a getPresence past it records nothing.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 1000
# Presence subscriptions one user may have on them in one cell (docs/limits.md: a change
# costs one post per watcher); a getPresence that would pass it records nothing.
MAX_WATCHERS_PER_USER = 5000
# The users a `contacts` presence visibility may list (§2).
MAX_CONTACTS = 1000
# The users one user may block (§2 setBlocked).
MAX_BLOCKED = 1000

# --- identity ----------------------------------------------------------------------------
KEY_BYTES = 32
SIGNATURE_BYTES = 64
CONNECT_WINDOW_SECONDS = 300
CONNECT_SIGNING_PREFIX = "messenger-connect"
# The v1.2 connect signature, bound to the endpoint (`aud`) and the device (§1).
BOUND_CONNECT_SIGNING_PREFIX = "messenger-connect-2"
TS_PATTERN = r"^[0-9]{1,12}$"
# The longest `aud` (a WebSocket URL without its query) a handshake may carry.
MAX_AUD_CHARS = 2048
# Connections one device may hold at once; a handshake beyond them closes the oldest
# (REPLACED). Make-before-break needs two.
MAX_CONNECTIONS_PER_DEVICE = 4

# --- linked devices (§8) -----------------------------------------------------------------
DEVICE_ID_PATTERN = r"^[a-z0-9_-]{1,32}$"
# The device that registered the user: its keys are the account's.
PRIMARY_DEVICE_ID = "1"
MAX_DEVICES = 5
DEVICES_SIGNING_PREFIX = "messenger-devices"
# A new device's link code: this prefix, then base64url of UTF-8 JSON.
LINK_CODE_PREFIX = "ml1:"
# The longest link code read (four fields, with room to spare).
MAX_LINK_CODE_CHARS = 1024
# A message sealed for devices: SecretBox under a random key, the key Box-sealed per device.
SECRET_KEY_BYTES = 32
WRAPPED_KEY_BYTES = SECRET_KEY_BYTES + 16  # the key and its Poly1305 tag

# --- queues and pacing (§2, §3) ---------------------------------------------------------------
# The least a server may hold in one queue, and from one sender in one queue, before it
# refuses QUEUE_FULL (receipts do not count).
MIN_QUEUE_MESSAGES = 10_000
MIN_QUEUE_MESSAGES_PER_SENDER = 1_000
# A connection that sends more than this many frames in this window meets RATE_LIMITED.
MAX_CONNECTION_FRAMES = 300
CONNECTION_FRAMES_WINDOW_SECONDS = 5
# A connection that sends more than this many refused frames in this window is closed
# (TOO_MANY_REFUSED).
MAX_REFUSED_FRAMES = 100
REFUSED_FRAMES_WINDOW_SECONDS = 60

# --- directory (§6) -------------------------------------------------------------------------
DIRECTORY_SIGNING_PREFIX = "messenger-directory"
# What the directory key signs: the SHA-512 digest of the signing text, so that a key
# service that signs a few KB at most can sign a directory of thousands of cells.
DIRECTORY_DIGEST_BYTES = 64
# Every cell knows the newest directory version within this long (and puts it in `dv`);
# a moved or fenced connection is closed within it too.
DIRECTORY_PROPAGATION_SECONDS = 5
# A client that learns of a newer version from `dv` fetches it after a random delay of up
# to this long, unless it needs it at once.
DIRECTORY_FETCH_JITTER_SECONDS = 60

# --- API Gateway's own limits, which the protocol inherits -------------------------------
MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 600
MAX_CONNECTION_SECONDS = 2 * 3600

# --- push --------------------------------------------------------------------------------
# Device tokens as the platforms hand them out: APNs tokens are hex (32 bytes today, and
# Apple says they may grow, up to 100 bytes); FCM registration tokens are ~160 characters
# of [A-Za-z0-9_:-] (4096 is the most SNS accepts).
PUSH_TOKEN_PATTERNS = {
    PushPlatform.APNS: r"^[0-9A-Fa-f]{64,200}$",
    PushPlatform.APNS_SANDBOX: r"^[0-9A-Fa-f]{64,200}$",
    PushPlatform.GCM: r"^[A-Za-z0-9_:.-]{100,4096}$",
}
MAX_PUSH_TOKEN_CHARS = 4096
