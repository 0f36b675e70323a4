"""How our clients behave on the wire: the rules every client we write follows.

docs/protocol.md says what a careful client does: it sends the same frame again after
`RATE_LIMITED` or `INTERNAL` (§3), retries a handshake that failed with a 5xx or a
timeout and takes 401/403 as final (§1), pings under API Gateway's idle limit and
reconnects before its 2-hour limit (§4), and resends after a failover (§7). This module
holds the numbers and sets our clients do it with, once: the Python SDK
(`messenger_client`) and the load benchmark's client import it, and the JavaScript SDK
imports web/sdk/client-rules.generated.js, generated from it
(`python -m messenger_protocol.javascript`; a test fails when that file is stale).

Durations are in seconds here and in the generated file; the JavaScript SDK, which
counts in milliseconds, multiplies them where it reads them.
"""

from __future__ import annotations

import random

from messenger_protocol import limits
from messenger_protocol.names import ErrorCode, PresenceVisibility

__all__ = [
    "ACK_DELAY_SECONDS",
    "BACKOFF_MAX_DOUBLINGS",
    "CLOSE_TIMEOUT_SECONDS",
    "DEFAULT_PRESENCE_VISIBILITY",
    "FINAL_CLOSE_ERRORS",
    "FINAL_CLOSE_REASONS",
    "FINAL_HANDSHAKE_STATUSES",
    "GATEWAY_ERROR_MESSAGES",
    "KEEP_ALIVE_TICK_SECONDS",
    "MAX_ACK_RETRIES",
    "MAX_CONNECTION_AGE_SECONDS",
    "MAX_RECENT_ACK_FRAMES",
    "MOVE_ON_ERRORS",
    "OPEN_TIMEOUT_SECONDS",
    "PAUSED_CLOSE_ERRORS",
    "PING_INTERVAL_SECONDS",
    "PING_JITTER_SECONDS",
    "PONG_TIMEOUT_SECONDS",
    "RECENT_ACKS_SECONDS",
    "RECONNECT_BACKOFF_BASE_SECONDS",
    "RECONNECT_BACKOFF_CAP_SECONDS",
    "REFUSED_CLOSE_PAUSE_SECONDS",
    "REPLACE_BEFORE_LIMIT_SECONDS",
    "REQUEST_TIMEOUT_SECONDS",
    "RESEND_BASE_SECONDS",
    "RESEND_CAP_SECONDS",
    "RETRYABLE_CODES",
    "UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS",
    "UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS",
    "UNKNOWN_RECIPIENT_WINDOW_SECONDS",
    "backoff_delay",
    "ping_delay",
    "resend_wait",
]

# --- answers ---------------------------------------------------------------------------
# The refusals of a message worth sending the same frame again for, later: RATE_LIMITED
# and QUEUE_FULL stored nothing, INTERNAL half-did nothing (§2, §3). Every other refusal
# is final. RATE_LIMITED and QUEUE_FULL say how long to wait at least (`retryAfter`,
# `resend_wait`).
RETRYABLE_CODES = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.QUEUE_FULL, ErrorCode.INTERNAL})
# API Gateway's own error frame: no `type` and no `ref`, only a `message`, one of these
# when the function behind a route raised or outlasted the integration timeout. It names
# no frame, so what it answered is sent again as after an unanswered frame.
GATEWAY_ERROR_MESSAGES = ("Internal server error", "Endpoint request timed out")
# The HTTP statuses of a handshake the server refused because of us (our identity, our
# clock, a cell that is not our home, §1): asking again would be refused again. Any
# other failure (a 5xx, a timeout) is retried with the reconnect backoff.
FINAL_HANDSHAKE_STATUSES = frozenset({401, 403})
# The errors announcing a close (§3 Closing) after which a client must not reconnect on
# its own, and what a client tells its user of each. REPLACED says a newer connection of
# the same device took this one's place, and connecting again would replace one of the
# device's in turn, a loop. DEVICE_REMOVED says device 1 took this device off the list
# (§8): every handshake is refused (403) until it is linked again. The connection stays
# down (what was not sent stays in the outbox) until the app starts it again. The error
# frame says it; `messenger local` also closes with the code as the reason (1008). MOVED
# is not one of them: it closes to be reconnected elsewhere, after a directory fetch (§7).
FINAL_CLOSE_REASONS = {
    ErrorCode.REPLACED: "another connection of this device took this one's place",
    ErrorCode.DEVICE_REMOVED: (
        "this device was removed from its user's device list: link it again from device 1"
    ),
}
FINAL_CLOSE_ERRORS = frozenset(FINAL_CLOSE_REASONS)
# The errors announcing a close after which a client reconnects on its own, but not at
# once: TOO_MANY_REFUSED says this connection kept sending frames the server refused, and
# the same client, back at once, would most likely be refused and closed again (a loop
# that costs a handshake, an authorizer and a presence change each turn). It first
# waits out the server's window of refused frames (`REFUSED_CLOSE_PAUSE_SECONDS`, more
# if the reconnect backoff says more), with jitter so that many such clients spread out.
PAUSED_CLOSE_ERRORS = frozenset({ErrorCode.TOO_MANY_REFUSED})
# The errors after which a client closes the connection itself, whether or not the server
# does, and reconnects: MOVED says this side no longer serves us (§6, §7), and API Gateway,
# answering a `ping` from the stage of a side a switch demoted, can say it but not close;
# the handshake there is then refused and the directory read again names the new home.
MOVE_ON_ERRORS = frozenset({ErrorCode.MOVED})
# An `ack` refused for load names only the action, not its ids (§3): the acks sent within
# RECENT_ACKS_SECONDS (at most MAX_RECENT_ACK_FRAMES frames) go again once the refusal's
# wait is over, for up to MAX_ACK_RETRIES refusals within a minute of each other; past
# them the items wait for the next sync (a connection that sends more than 100 refused
# frames a minute is closed). Acking an id twice is harmless.
RECENT_ACKS_SECONDS = 60
MAX_RECENT_ACK_FRAMES = 10
MAX_ACK_RETRIES = 3

# A `sendMessage` refused UNKNOWN_RECIPIENT within this long after the recipient's cell
# changed epoch may be a registration the failover lost (§7): the message is kept and
# sent again, backing off up to the cap, for up to a day after the first such refusal.
UNKNOWN_RECIPIENT_WINDOW_SECONDS = 3600.0
UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS = 86400.0
UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS = 600.0

# --- backoff ---------------------------------------------------------------------------
# A retry's step doubles from the base up to the cap (`backoff_delay`); past this many
# doublings the step is the cap anyway, and 2**n would only grow.
BACKOFF_MAX_DOUBLINGS = 32
# Between connection attempts after a loss or a failed handshake.
RECONNECT_BACKOFF_BASE_SECONDS = 0.5
RECONNECT_BACKOFF_CAP_SECONDS = 30.0
# After a close for too many refused frames (PAUSED_CLOSE_ERRORS): the server's window.
REFUSED_CLOSE_PAUSE_SECONDS = float(limits.REFUSED_FRAMES_WINDOW_SECONDS)
# A message not acked within the base is sent again (the same frame), then backing off.
RESEND_BASE_SECONDS = 3.0
RESEND_CAP_SECONDS = 60.0

# --- the connection's life --------------------------------------------------------------
OPEN_TIMEOUT_SECONDS = 10.0
# How long a closing socket may take to say goodbye before we drop it.
CLOSE_TIMEOUT_SECONDS = 2.0
# Ping when nothing was sent for about this long: just under API Gateway's 10-minute idle
# limit, since `ping` is answered by API Gateway itself and costs only its two messages
# (docs/performance.md, Keepalive). Only what the client sends counts: AWS documents no
# reset of the idle timer by what the server sends, and the emulator resets it only so.
PING_INTERVAL_SECONDS = limits.IDLE_TIMEOUT_SECONDS * 0.9
# Each wait is the interval plus or minus up to this much (`ping_delay`), so that clients
# that connected together (a reconnect storm) do not ping together forever after.
PING_JITTER_SECONDS = 30.0
# A ping unanswered for this long means the network is gone without a close.
PONG_TIMEOUT_SECONDS = 30.0
# The latest a ping may go out and still be answered inside the idle limit, a tick late.
assert PING_INTERVAL_SECONDS + PING_JITTER_SECONDS + PONG_TIMEOUT_SECONDS / 2 < (
    limits.IDLE_TIMEOUT_SECONDS
)
# How often a connection looks whether it is time to ping or to be replaced.
KEEP_ALIVE_TICK_SECONDS = 1.0
# Make before break: a new connection opens this long before API Gateway would end the
# old one, and takes over before the old one closes, so watchers see no offline blip.
REPLACE_BEFORE_LIMIT_SECONDS = 600
MAX_CONNECTION_AGE_SECONDS = limits.MAX_CONNECTION_SECONDS - REPLACE_BEFORE_LIMIT_SECONDS

# --- requests, acks, presence, the directory ----------------------------------------------
# How long a request that expects an answer (getKeys, getPresence...) waits for it.
REQUEST_TIMEOUT_SECONDS = 10.0
# Acks of items that arrive together (a sync page) go out in one frame this much later.
ACK_DELAY_SECONDS = 0.05
# Who may see our presence unless the app says otherwise: the people we wrote to.
DEFAULT_PRESENCE_VISIBILITY = PresenceVisibility.CONTACTS


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): "equal jitter".

    Half of the capped exponential step is fixed, the other half random, so clients
    that lost the server together do not all come back at the same instant, and no
    one retries in a tight loop. The JavaScript SDK's `backoffDelay` computes the same
    (a test holds the two to the same numbers).
    """
    step = min(cap, base * 2 ** min(attempt, BACKOFF_MAX_DOUBLINGS))
    return step / 2 + (rng or random).uniform(0, step / 2)


def resend_wait(backoff: float, retry_after_ms: int | None) -> float:
    """Seconds to wait before sending a refused frame again: the backoff, and never sooner
    than the refusal's `retryAfter` (§3), which the server may set far beyond the backoff
    (a full queue drains when its owner comes back). The JavaScript SDK's `resendWait`
    computes the same."""
    return max(backoff, (retry_after_ms or 0) / 1000)


def ping_delay(interval: float = PING_INTERVAL_SECONDS, rng: random.Random | None = None) -> float:
    """Seconds of quiet (nothing sent) before the next ping: `interval`, jittered by the
    same share of it as PING_JITTER_SECONDS is of PING_INTERVAL_SECONDS (540 ± 30 s by
    default; a test's shortened interval gets a jitter shortened alike).

    The JavaScript SDK's `pingDelay` draws from the same range (a test holds both to it).
    """
    spread = interval * PING_JITTER_SECONDS / PING_INTERVAL_SECONDS
    return interval + (rng or random).uniform(-spread, spread)
