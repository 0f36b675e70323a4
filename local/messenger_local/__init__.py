"""The local stack: an API Gateway WebSocket emulator running the real functions on moto.

`LocalStack` (see messenger_local.stack) is the in-process API; `messenger local`
(messenger_local.cli) is the command.
"""

from messenger_local.aws import EmbeddedAws
from messenger_local.invocations import Invocation
from messenger_local.stack import LocalStack

__all__ = ["EmbeddedAws", "Invocation", "LocalStack"]
