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
# The name of a cell's generation in syncDone (§3, §7).
MAX_EPOCH_CHARS = 128

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
# The users a `contacts` presence visibility may list (§2).
MAX_CONTACTS = 1000

# --- identity ----------------------------------------------------------------------------
KEY_BYTES = 32
SIGNATURE_BYTES = 64
CONNECT_WINDOW_SECONDS = 300
CONNECT_SIGNING_PREFIX = "messenger-connect"
TS_PATTERN = r"^[0-9]{1,12}$"

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
