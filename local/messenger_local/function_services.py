"""What the functions of a stack run on: boto3 clients made once per stack, and each
cell's `Services`, made from the environment Lambda would give that cell's functions.

On Lambda each function has a process of its own, configured by its environment. Here the
functions of every cell (and of every stack) share one process, so nothing goes into
`os.environ`: each cell's environment is a mapping (`runtime_variables` for what every
function is given, then the cell's own, messenger_local.cells), and from it

- the cell's `Settings`, by the functions' own parser (`messenger.config.settings_from`);
- the clients, once per stack, from the embedded AWS's session (fake credentials, moto's
  region), each at the address the environment names: DynamoDB and SNS at moto
  (answered in the calling thread, messenger_local.aws), Lambda's Invoke API and
  @connections at the stack's own port. No client goes through a proxy: every address
  is on this machine.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from botocore.config import Config

from messenger.config import settings_from
from messenger.wiring import (
    CLIENT_CONFIG,
    LAMBDA_CLIENT_CONFIG,
    S3_CLIENT_CONFIG,
    SNS_CLIENT_CONFIG,
    Services,
)
from messenger_local.aws import FAKE_CREDENTIALS, EmbeddedAws
from messenger_local.runtime import POWERTOOLS_VARIABLES
from messenger_local.settle_queue import SENT_TO

AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
AWS_ENDPOINT_URL_LAMBDA = "AWS_ENDPOINT_URL_LAMBDA"
_DIRECT = Config(proxies={})


def runtime_variables(aws: EmbeddedAws, lambda_url: str) -> dict[str, str]:
    """What every function of the stack is given besides its cell's own variables."""
    return {
        AWS_ENDPOINT_URL: aws.endpoint,
        "AWS_DEFAULT_REGION": aws.region,
        "AWS_REGION": aws.region,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        # The functions invoke one another through the Invoke API the stack serves.
        AWS_ENDPOINT_URL_LAMBDA: lambda_url,
        **POWERTOOLS_VARIABLES,
    }


class FunctionClients:
    """The functions' boto3 clients, shared by every cell of a stack (as the clients of
    one container are shared by its invocations), at the addresses `variables` name."""

    def __init__(self, aws: EmbeddedAws, variables: Mapping[str, str]) -> None:
        self._aws = aws
        self._lock = threading.Lock()
        endpoint = variables[AWS_ENDPOINT_URL]
        self.dynamodb = aws.client(
            "dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG.merge(_DIRECT)
        )
        self._sns = aws.client(
            "sns", endpoint_url=endpoint, config=SNS_CLIENT_CONFIG.merge(_DIRECT)
        )
        # The directory's bucket: the peers' Relay records (docs/scale.md "The mesh").
        self._s3 = aws.client("s3", endpoint_url=endpoint, config=S3_CLIENT_CONFIG.merge(_DIRECT))
        # The presence function's settle queue (messenger_local.settle_queue).
        self._sqs = SENT_TO.watch(
            aws.client("sqs", endpoint_url=endpoint, config=CLIENT_CONFIG.merge(_DIRECT))
        )
        self._lambda = aws.client(
            "lambda",
            endpoint_url=variables[AWS_ENDPOINT_URL_LAMBDA],
            config=LAMBDA_CLIENT_CONFIG.merge(_DIRECT),
        )

    def management(self, endpoint: str) -> Any:
        """An @connections client of one stage (each cell's Services keeps its own)."""
        # A session makes clients one at a time.
        with self._lock:
            return self._aws.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint,
                config=CLIENT_CONFIG.merge(_DIRECT),
            )

    def sns(self) -> Any:
        return self._sns

    def s3(self, region: str) -> Any:
        """The S3 client (the embedded AWS has one region)."""
        return self._s3

    def sqs(self) -> Any:
        return self._sqs

    def invoker(self) -> Any:
        """The `lambda` client: the presence function's invocations, the peers' Relays."""
        return self._lambda

    def services(self, environment: Mapping[str, str]) -> Services:
        """A cell's Services: its Settings parsed from its environment, these clients."""
        return Services(
            settings=settings_from(environment),
            dynamodb=self.dynamodb,
            management_client_factory=self.management,
            sns_client_factory=self.sns,
            lambda_client_factory=self.invoker,
            s3_client_factory=self.s3,
            sqs_client_factory=self.sqs,
        )
