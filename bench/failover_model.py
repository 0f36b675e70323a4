"""The RTO of a full cell's failover on AWS, modelled (docs/availability.md, "RTO at scale").

`./dev bench failover` measures a failover of 400 local clients on 2 cores; a real cell
holds hundreds of thousands of sockets and meets quotas the local stack does not have.
This is the arithmetic for one cell of the deployment `bench scale` plans (its heaviest
cell at the peak hour), in four phases, each with what it assumes:

1. **detection**: the probe fails `failed_probes` times `probe_seconds` apart, then the
   switch runs and the directory is published (infra/failover_automation.py's 1-minute
   probe, 3 failed probes; the switch and publish time is an ASSUMPTION);
2. **dead-socket discovery**: a lost region sends no close, so each client learns its
   socket is dead at its next ping's pong timeout, spread evenly over one ping interval
   (its SDK's ping cadence, client_rules' pong timeout);
3. **the reconnect storm**: every socket of the cell reconnects to the standby through
   its new-connections quota (500/s by default; a raised value), less the cell's own new
   sessions, which go on meanwhile; clients that learnt early wait for the switch;
4. **the resend storm** (docs/protocol.md §7): every online sender resends each message
   the cell stored for a recipient still offline, acked under the old epoch; it draws on
   the API requests the cell's steady load leaves under the standby's quota.

The RTO printed is the time until the last socket is back and the last resend is
answered; the first user is back at the end of detection.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.scale_model import (
    DAY,
    Measured,
    Workload,
    cross_share,
    heaviest_share,
    peak_rates,
    plan,
)

# The standby's quotas (bench/quotas.py's keys) the storms run into.
NEW_CONNECTIONS, API_REQUESTS = "new_connections", "api_requests"


@dataclass(frozen=True)
class CellAtPeak:
    """The heaviest cell at the peak hour, as `bench scale` plans it."""

    sockets: float  # open sockets
    new_connections: float  # its own new connections a second (sessions, renewals)
    messages_in: float  # messages a second stored by this cell (its users are recipients)
    api_requests: float  # its steady API Gateway requests a second
    offline: float  # share of devices without a socket (the recipients still to reach)
    connects_per_device_day: float  # sessions a device opens a day


def cell_at_peak(w: Workload, measured: Measured) -> tuple[int, CellAtPeak]:
    """The deployment `bench scale` plans at default quotas: its cell count, and its
    heaviest cell at the peak hour."""
    planned = plan(w, measured)
    if planned.cells is None or planned.demand is None:
        raise ValueError("no cell count carries this workload")
    share = heaviest_share(planned.cells, w.shards)
    rates = peak_rates(w, measured, cross_share(planned.cells))
    return planned.cells, CellAtPeak(
        sockets=w.connected_sockets * share,
        new_connections=planned.demand.new_connections,
        messages_in=rates.messages * share,
        api_requests=planned.demand.api_requests,
        offline=1 - w.connected,
        connects_per_device_day=w.connects / w.devices,
    )


@dataclass(frozen=True)
class Assumptions:
    """What the model takes as given; each printed beside the figures."""

    probe_seconds: float = 60.0  # infra/user_probe.py PROBE_MINUTES
    failed_probes: int = 3  # infra/failover_automation.py FAILED_PROBES_TO_SWITCH
    switch_seconds: float = 30.0  # ASSUMPTION: switch, publish, CloudFront's 5 s max-age
    ping_seconds: float = 240.0  # the SDK's ping interval (a dead socket's last chance)
    pong_seconds: float = 30.0  # client_rules.PONG_TIMEOUT_SECONDS
    requests_per_resend: float = 2.0  # ASSUMPTION: the resent frame in, its `ack` posted


@dataclass(frozen=True)
class Rto:
    """The phases of one modelled failover, in seconds from the region's loss."""

    detection: float  # the switch is published: the first client can be back
    discovery_worst: float  # the last client learns its socket is dead
    reconnect_rate: float  # sockets a second the standby's quota leaves for the storm
    last_reconnect: float  # the last socket is back
    resends: float  # messages resent
    resend_seconds: float  # their drain at the spare request quota
    rto: float  # the last socket back and the last resend answered

    def lines(self) -> list[str]:
        def minutes(seconds: float) -> str:
            return f"{seconds:,.0f} s ({seconds / 60:,.1f} min)"

        rows = [
            ("detection (probes, switch, publish)", minutes(self.detection)),
            ("dead-socket discovery, last client", minutes(self.discovery_worst)),
            (
                f"reconnect storm ({self.reconnect_rate:,.0f} sockets/s)",
                f"last socket back at {minutes(self.last_reconnect)}",
            ),
            (
                f"resend storm ({self.resends:,.0f} messages)",
                f"{minutes(self.resend_seconds)} at the spare request quota",
            ),
            ("RTO (last socket back, last resend answered)", minutes(self.rto)),
        ]
        return [f"    {label:<48}{value}" for label, value in rows]


def last_arrival_served(count: float, spread: float, start: float, rate: float) -> float:
    """When the last of `count` clients, arriving evenly over [0, `spread`], is served at
    `rate` a second from `start` on (those arriving earlier wait): the queue's end."""
    if rate <= 0:
        return float("inf")
    if count <= 0:
        return start
    arrivals = count / spread if spread > 0 else float("inf")
    # Faster than they arrive, the queue empties when served == arrived; from then on each
    # client is served as it arrives, the last one at `spread`.
    if rate > arrivals and rate * start / (rate - arrivals) <= spread:
        return spread
    return max(start + count / rate, spread)


def model_rto(
    cell: CellAtPeak, new_connections_quota: float, api_quota: float, a: Assumptions
) -> Rto:
    """The four phases of the module doc for one cell and the standby's quotas."""
    detection = a.probe_seconds * a.failed_probes + a.switch_seconds
    discovery = a.ping_seconds + a.pong_seconds
    reconnect_rate = new_connections_quota - cell.new_connections
    # Clients learn over [pong, ping + pong]; shifted to start at 0 for the queue.
    last_reconnect = a.pong_seconds + last_arrival_served(
        cell.sockets, a.ping_seconds, detection - a.pong_seconds, reconnect_rate
    )
    # A recipient offline now waits, on average, half the time between its sessions.
    mean_wait = DAY / cell.connects_per_device_day / 2
    online_senders = 1 - cell.offline
    resends = cell.messages_in * cell.offline * mean_wait * online_senders
    spare_requests = api_quota - cell.api_requests
    resend_seconds = (
        resends * a.requests_per_resend / spare_requests if spare_requests > 0 else float("inf")
    )
    rto = max(last_reconnect, detection + resend_seconds)
    return Rto(
        detection=detection,
        discovery_worst=discovery,
        reconnect_rate=reconnect_rate,
        last_reconnect=last_reconnect,
        resends=resends,
        resend_seconds=resend_seconds,
        rto=rto,
    )
