"""One console line per mobile push the functions send, next to the invocation lines:

    12:00:01.234 push         user=bob  platform=APNS  payload=262 bytes

The functions log every push that went out (`contract.PUSH_SENT_LOG_MESSAGE`, with the
recipient, the platform and the payload size; never the payload, which says nothing
anyway) through powertools' logger, which is the standard `logging` logger named after
the service. `PushLines` is a handler on that logger that turns those records into
lines; what SNS (moto) received is in its backend (see the README).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

# Only the contract: importing the functions here would make powertools' logger grab
# sys.stdout before `messenger local` points it at the function log.
from messenger.contract import PUSH_SENT_LOG_MESSAGE, SERVICE_NAME


class PushLines(logging.Handler):
    """Calls `emit_line` with a readable line for each push the functions log."""

    def __init__(self, emit_line: Callable[[str], None]) -> None:
        super().__init__(level=logging.INFO)
        self._emit_line = emit_line

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != PUSH_SENT_LOG_MESSAGE:
            return
        at = datetime.fromtimestamp(record.created)
        self._emit_line(
            f"{at:%H:%M:%S}.{at.microsecond // 1000:03d} {'push':<12} "
            f"user={getattr(record, 'recipient', '?')}  "
            f"platform={getattr(record, 'platform', '?')}  "
            f"payload={getattr(record, 'payloadBytes', '?')} bytes"
        )


@contextmanager
def push_lines(emit_line: Callable[[str], None]) -> Iterator[PushLines]:
    """While inside, every push the functions send becomes one `emit_line` call.

    Records reach the handler only at the functions' log level or below it: pushes
    are logged at INFO.
    """
    functions_logger = logging.getLogger(SERVICE_NAME)
    handler = PushLines(emit_line)
    functions_logger.addHandler(handler)
    try:
        yield handler
    finally:
        functions_logger.removeHandler(handler)
