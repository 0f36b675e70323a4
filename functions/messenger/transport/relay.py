"""The cell-to-cell call: invoking a peer cell's Relay function (docs/scale.md).

Requests and answers are JSON (transport/relay_records.py). A refusal with a
docs/protocol.md code comes back as the same domain error it was in the peer; anything
else (a timeout, a throttle, the function failing) is `RelayFailed`, which the caller
answers INTERNAL: the client resends, and every operation is idempotent.

Where a peer's Relays are is read from the directory's bucket (dal/relay_directory.py), and
every request is signed by this side's relay key (transport/relay_records.py), so that the
peer knows which cell made it (docs/scale.md "The mesh").

A peer with a standby (docs/protocol.md §7) has two Relays: its primary's and its standby's.
Only the active side answers; the other refuses `MOVED` (§7 Fencing). The caller tries
first the side that answered it last (at first the primary) and, when that one does not
answer (`RelayFailed`, after botocore's two tries of 2 s + 4 s: messenger.wiring) or
answers MOVED, the other. Any other refusal is an answer: it is never tried elsewhere.
Retrying on the other side is safe for the same reason a client's resend is: every
operation is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from messenger.dal.relay_directory import RelayDirectory
from messenger.logic.clock import Clock
from messenger.transport.relay_records import ANSWER, REFUSAL, request_payload
from messenger_protocol.errors import (
    BadRequest,
    ProtocolError,
    QueueFull,
    RateLimited,
    StaleDevices,
    TooLarge,
    UnknownRecipient,
    UnknownUser,
)
from messenger_protocol.names import ErrorCode, RelayOperation

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from nacl.signing import SigningKey

REFUSALS: dict[str, type[ProtocolError]] = {
    ErrorCode.BAD_REQUEST: BadRequest,
    ErrorCode.UNKNOWN_RECIPIENT: UnknownRecipient,
    ErrorCode.UNKNOWN_USER: UnknownUser,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.QUEUE_FULL: QueueFull,
}


def _stale_devices(refused: Mapping[str, Any]) -> StaleDevices:
    """A peer's STALE_DEVICES, with the versions it holds (docs/protocol.md §8)."""
    devices, self_devices = refused.get("devices"), refused.get("selfDevices")
    if type(devices) is not int or type(self_devices) is not int:
        raise RelayFailed(f"a STALE_DEVICES refusal without versions: {refused}")
    return StaleDevices(str(refused.get("message", "")), devices, self_devices)


class RelayFailed(Exception):
    """A peer cell did not answer (or failed): nothing is known to have happened there."""


class RelaySideFenced(RelayFailed):
    """The side called is not its cell's active one: nothing happened there."""


class RelayClient:
    """Calls the Relay of peer cells. The Lambda client is made on first use.

    `directory`: where each peer's Relays are (its primary's, then its standby's if it has
    one). `signing_key`: this side's relay key, asked for at each call (it is kept by
    whoever gives it).
    """

    def __init__(
        self,
        client_factory: Callable[[], LambdaClient],
        own_cell: str,
        directory: RelayDirectory,
        signing_key: Callable[[], SigningKey],
        clock: Clock,
    ) -> None:
        self._client_factory = client_factory
        self._client: LambdaClient | None = None
        self._own_cell = own_cell
        self._directory = directory
        self._signing_key = signing_key
        self._clock = clock
        # cell -> the Relay that answered last: the active side, as far as we know.
        self._answered_by: dict[str, str] = {}

    @property
    def client(self) -> LambdaClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _payload(self, cell: str, operation: RelayOperation, request: Mapping[str, Any]) -> bytes:
        signed = request_payload(
            operation, self._own_cell, cell, request, self._signing_key(), self._clock.now_ms()
        )
        return json.dumps(signed).encode()

    def relays_in_order(self, cell: str) -> list[str]:
        """The cell's Relays, the one that answered last first. RelayFailed if the cell
        has published none (it is not deployed yet)."""
        try:
            relays = [record.function for record in self._directory.sides_of(cell)]
        except Exception as error:  # S3 unreachable, a broken record
            raise RelayFailed(f"cell {cell}'s Relay records unreadable: {error}") from error
        if not relays:
            raise RelayFailed(f"cell {cell} has published no Relay")
        last = self._answered_by.get(cell)
        return [last, *(relay for relay in relays if relay != last)] if last in relays else relays

    def _each_relay(self, cell: str, attempt: Callable[[str], Any]) -> Any:
        """`attempt` on the cell's Relays in order, until one does not raise RelayFailed."""
        *others, last = self.relays_in_order(cell)
        for relay in others:
            try:
                return self._remembered(cell, relay, attempt)
            except RelayFailed:
                continue  # the next side may be the active one
        return self._remembered(cell, last, attempt)

    def _remembered(self, cell: str, relay: str, attempt: Callable[[str], Any]) -> Any:
        try:
            result = attempt(relay)
        except ProtocolError:
            self._answered_by[cell] = relay  # a refusal is an answer
            raise
        self._answered_by[cell] = relay
        return result

    def call(self, cell: str, operation: RelayOperation, request: Mapping[str, Any]) -> Any:
        """Run an operation in a peer cell and return its answer; refusals raise."""
        return self._each_relay(cell, lambda relay: self._call(relay, cell, operation, request))

    def _call(
        self, relay: str, cell: str, operation: RelayOperation, request: Mapping[str, Any]
    ) -> Any:
        try:
            response = self.client.invoke(
                FunctionName=relay,
                InvocationType="RequestResponse",
                Payload=self._payload(cell, operation, request),
            )
            answer = json.loads(response["Payload"].read())
        except Exception as error:  # botocore's errors, a timeout, a broken answer
            raise RelayFailed(f"cell {cell} did not answer {operation}: {error}") from error
        if response.get("FunctionError") or not isinstance(answer, dict):
            raise RelayFailed(f"cell {cell} failed {operation}: {str(answer)[:200]}")
        if REFUSAL in answer:
            refused = answer[REFUSAL] if isinstance(answer[REFUSAL], dict) else {}
            if refused.get("code") == ErrorCode.MOVED:
                raise RelaySideFenced(f"{relay} is not cell {cell}'s active side")
            if refused.get("code") == ErrorCode.STALE_DEVICES:
                raise _stale_devices(refused)
            refusal = REFUSALS.get(str(refused.get("code")))
            if refusal is None:
                raise RelayFailed(f"cell {cell} answered {operation} with {refused}")
            raise refusal(str(refused.get("message", "")))
        return answer.get(ANSWER)

    def notify(self, cell: str, operation: RelayOperation, request: Mapping[str, Any]) -> None:
        """Hand an operation to a peer cell without waiting for it (an Event invoke)."""
        self._each_relay(cell, lambda relay: self._notify(relay, cell, operation, request))

    def _notify(
        self, relay: str, cell: str, operation: RelayOperation, request: Mapping[str, Any]
    ) -> None:
        try:
            self.client.invoke(
                FunctionName=relay,
                InvocationType="Event",
                Payload=self._payload(cell, operation, request),
            )
        except Exception as error:
            raise RelayFailed(f"cell {cell} did not take {operation}: {error}") from error
