"""Each vantage's Probe function (infra/user_probe.py): the cell, as its users reach it.

Its own module, apart from `failover`: it signs its handshake (pynacl, through
`user_probe`), which only the probe's asset carries (infra/bundling.py `with_signing`).
"""

from __future__ import annotations

from typing import Any

from messenger_aws.directory_buckets import ABSENT_CODES, DirectoryBuckets
from messenger_directory.config import ProbeSettings, probe_settings
from messenger_directory.observability import logger
from messenger_directory.store import entry_key, entry_url
from messenger_directory.user_probe import ProbeUser, probe_cell, probe_metric_data
from messenger_directory.wiring import Clients, failover_clients

PROBE_HANDLER = f"{__name__}.probe"


@logger.inject_lambda_context(clear_state=True)
def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every minute, from one vantage (each side's region): what a user of the cell feels.

    Connects to the URL the directory sends the cell's users to, as the cell's probe user,
    and pings (messenger_directory.user_probe); publishes success 0/1 and the round trip
    into the standby region's CloudWatch, by cell and vantage. A cell that fails the probe
    is a measurement, not an error: the invocation fails only when the probe itself cannot
    run (its Errors alarm), which counts as no data for the switch.
    """
    settings = probe_settings()
    clients = failover_clients()
    url = _cell_url(settings, clients)
    secret = clients.secretsmanager(settings.region).get_secret_value(SecretId=settings.secret)[
        "SecretString"
    ]
    outcome = probe_cell(url, ProbeUser.from_secret(secret, settings.user_id))
    clients.cloudwatch(settings.metric_region).put_metric_data(
        **probe_metric_data(outcome, cell=settings.cell_id, vantage=settings.vantage)
    )
    summary = {
        "cell": settings.cell_id,
        "vantage": settings.vantage,
        "url": url,
        **outcome.summary(),
    }
    if outcome.ok:
        logger.info("probe answered", extra=summary)
    else:
        logger.warning("probe failed", extra=summary)
    return summary


def _cell_url(settings: ProbeSettings, clients: Clients) -> str:
    """The URL in the cell's entry: from the first directory region's bucket or, when that
    one cannot be read (its region lost), the second's (messenger_aws.directory_buckets).
    LookupError if the cell has no entry; BucketsUnreadable if neither bucket answers."""
    fallback = settings.directory_fallback_bucket
    buckets = DirectoryBuckets(
        (lambda: clients.s3(settings.directory_region), settings.directory_bucket),
        None,  # (no owner checked, as before: the probe is given none)
        (lambda: clients.s3(settings.directory_fallback_region), fallback) if fallback else None,
    )
    found = buckets.read(entry_key(settings.cell_id), absent=ABSENT_CODES)
    if found is None:
        raise LookupError(f"cell {settings.cell_id} has no entry in the directory")
    return entry_url(settings.cell_id, *found)
