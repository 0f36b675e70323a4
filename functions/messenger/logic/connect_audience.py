"""Whether a connect query was signed for this cell side: `aud` (docs/protocol.md §1).

A v1.2 query names the endpoint its signature is bound to. A side accepts it only when
that is, exactly, one of the endpoints it serves: the one API Gateway says it was reached
at (`wss://domainName/stage`) and the configured ones (a custom domain; locally the
emulator's own URL). So a query signed for another cell, or for this cell's other side,
and relayed here by whoever lured the client there, is refused. The v1.1 form (no `aud`)
is accepted while the deployment allows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from messenger.errors import AccessDenied
from messenger_protocol.connect import ConnectQuery, canonical_endpoint


def reached_endpoint(domain_name: object, stage: object) -> str | None:
    """The endpoint an API Gateway event says the client reached, as `aud` names it;
    None when the event does not say (or says something that is no endpoint)."""
    if not isinstance(domain_name, str) or not isinstance(stage, str) or not domain_name:
        return None
    try:
        return canonical_endpoint(f"wss://{domain_name}/{stage}")
    except ValueError:
        return None


class ConnectAudience:
    """The endpoints this side serves, and whether the unbound v1.1 form is accepted."""

    def __init__(self, configured: Iterable[str], *, accept_v11: bool) -> None:
        self._configured = frozenset(configured)
        self._accept_v11 = accept_v11

    def admit(self, query: ConnectQuery, reached_at: str | None) -> None:
        """AccessDenied unless the query is bound to an endpoint of this side (or is in the
        v1.1 form, where that is still accepted)."""
        if query.aud is None:
            if not self._accept_v11:
                raise AccessDenied("sign the connect query for this endpoint (aud, v1.2)")
            return
        served = self._configured | ({reached_at} if reached_at else set())
        if query.aud not in served:
            raise AccessDenied("aud is not this endpoint: the query was signed for another")
