"""One registration budget per source address across the whole deployment (docs/limits.md).

New users one address may register per hour are counted in one cell only, the one the
shard rule (docs/protocol.md §6) gives the address, whichever cell the users belong to:
so a deployment of 800 cells promises 30 an hour, not 30 in each. When that cell is this
one, the counters are more actions of the registration's own transaction (nothing written
unless all of it is); when it is another, that cell counts it first (the Relay's
`countRegistration`), and over the limit the handshake is refused with nothing written
anywhere. A registration counted there that then loses a race here (the user id taken a
moment earlier) stays counted: the budget errs toward refusing.

An IPv6 subscriber holds a whole /64, so addresses count per /64; and since one holder may
get a /48 (65,536 /64s), each /48 has its own budget too, ten times the limit. The counters
of one registration live in one cell (the /48's for IPv6), so one transaction counts both.
Counters hold digests of the networks, never an address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from messenger.dal.nonces import RegistrationsExhausted
from messenger.dal.rate_limits import RateLimits
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.peers import Peers

# One IPv6 subscriber holds a whole /64: counting addresses inside it would count nothing.
IPV6_ADDRESS_PREFIX_BITS = 64
# What one holder may be given at most, usually: its budget is BLOCK_LIMIT_FACTOR times.
IPV6_BLOCK_PREFIX_BITS = 48
BLOCK_LIMIT_FACTOR = 10
# A registration counted for a peer is recorded by a digest of its attempt (128 bits).
_TOKEN_CHARS = 32


def _digest(network: str) -> str:
    return hashlib.sha256(network.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RegistrationSource:
    """Who a registration counts against, as digests: the address (IPv6: its /64) and,
    for IPv6, its /48 (`block`)."""

    address: str
    block: str | None = None

    @property
    def shard_key(self) -> str:
        """What the shard rule places the counters by: the /48 for IPv6 (so that both
        counters are in one cell), else the address."""
        return self.block or self.address


def registration_source(source_ip: str) -> RegistrationSource:
    """The source of a registration from `source_ip` (requestContext.identity.sourceIp)."""
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return RegistrationSource(_digest(source_ip or "unknown"))
    if address.version == 4:
        return RegistrationSource(_digest(str(ipaddress.ip_network(address))))

    def network(bits: int) -> str:
        return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))

    return RegistrationSource(
        _digest(network(IPV6_ADDRESS_PREFIX_BITS)), _digest(network(IPV6_BLOCK_PREFIX_BITS))
    )


def request_token(caller: str, attempt: str, source: RegistrationSource) -> str:
    """The idempotency token of one registration counted for a peer: a retry of the same
    attempt (a lost answer, the other side tried) counts once."""
    text = f"{caller}\n{attempt}\n{source.address}\n{source.block or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:_TOKEN_CHARS]


class RegistrationBudget:
    """Counts registrations per source address, in the cell that keeps the address's count."""

    def __init__(
        self, limits: RateLimits, cells: Cells, peers: Peers, clock: Clock, per_hour: int
    ) -> None:
        self._limits = limits
        self._cells = cells
        self._peers = peers
        self._clock = clock
        self._per_hour = per_hour

    def keeps(self, source: RegistrationSource) -> bool:
        """Whether this cell keeps the source's counters."""
        return self._cells.is_home(source.shard_key)

    def counters(self, source: RegistrationSource) -> list[dict[str, Any]]:
        """The transaction actions that count one registration from `source` here, each
        failing its condition when its hour is full."""
        now_s = self._clock.now_s()
        counts = [self._limits.registration_count(source.address, now_s, self._per_hour)]
        if source.block is not None:
            block_limit = self._per_hour * BLOCK_LIMIT_FACTOR
            counts.append(self._limits.registration_count(source.block, now_s, block_limit))
        return counts

    def count(self, source_ip: str, attempt: str) -> list[dict[str, Any]]:
        """Count a registration from `source_ip` for the transaction that writes the user.

        The counters' actions, when this cell keeps them (the transaction then counts it);
        none when another cell does, which has counted it already. RegistrationsExhausted,
        nothing written anywhere, when the address (or its /48) has no budget left this
        hour; a peer that does not answer raises RelayFailed (a failure, not a refusal)."""
        source = registration_source(source_ip)
        if self.keeps(source):
            return self.counters(source)
        if not self._peers.count_registration(
            self._cells.home_of(source.shard_key), source.address, source.block, attempt
        ):
            raise RegistrationsExhausted(source_ip)
        return []

    def count_for_peer(self, caller: str, source: RegistrationSource, attempt: str) -> bool:
        """Count a registration a peer cell is about to write (the Relay's
        `countRegistration`); False, nothing written, when over the budget."""
        token = request_token(caller, attempt, source)
        return self._limits.count_registration(self.counters(source), token, self._clock.now_s())
