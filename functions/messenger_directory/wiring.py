"""The directory's functions' boto3 clients: each made once per container, at first use,
then handed to what calls AWS (`store`'s functions, the switch's adapters).

Every call must fail well inside its function's timeout: a custom resource always answers
CloudFormation (which otherwise waits an hour), and a call to a region that is gone gives
up in seconds (its failure is the signal).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

from messenger_aws.clients import Clients as AwsClients
from messenger_directory.signer import DirectorySigner, KmsDirectorySigner

# The directory function and the entry custom resource: a few S3 calls each.
S3_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10
)
# The switch and the probe (and the operator's command, infra/failover.py).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=5
)


# A switch asking a directory function to publish (messenger_directory.failover): a merge
# signs and writes in two regions, so it may take seconds; the second attempt covers a
# throttle (the function runs one merge at a time, and the entry's own S3 event may be
# running one: that merge publishes the switch too). A region that hangs costs at most
# the entry's write (CLIENT_CONFIG: 2 x 5 s) and 2 x 10 s here before the next is tried.
PUBLISH_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10
)


class Clients(AwsClients):
    """The directory's functions' clients: the shared ones, and those only they use."""

    def kms(self, region: str | None = None) -> Any:
        """A KMS client of `region` (None: the function's own): the directory key."""
        return self.client("kms", region)

    def apigatewayv2(self, region: str) -> Any:
        """An API Gateway v2 client of `region`: where a cell's stage is (`stages`)."""
        return self.client("apigatewayv2", region)

    def lambda_(self, region: str) -> Any:
        """A Lambda client of `region`: a directory function a switch invokes."""
        return self.client("lambda", region)

    def secretsmanager(self, region: str) -> Any:
        """Secrets Manager of `region`: the probe user's secret, in the probe's region."""
        return self.client("secretsmanager", region)

    def cloudwatch(self, region: str) -> Any:
        """CloudWatch of `region`: where the probes publish (the standby's)."""
        return self.client("cloudwatch", region)


@cache
def directory_signer(key_id: str) -> DirectorySigner:
    """The directory key the directory function signs with: KMS's (tests put another)."""
    return KmsDirectorySigner(directory_clients().kms(), key_id)


@cache
def directory_clients() -> Clients:
    """The directory function's and the entry custom resource's clients."""
    return Clients(S3_CONFIG)


@cache
def failover_clients() -> Clients:
    """The Failover and Probe functions' clients."""
    return Clients(CLIENT_CONFIG)


@cache
def publisher_clients() -> Clients:
    """The Failover function's clients of the directory's functions."""
    return Clients(PUBLISH_CONFIG)


def forget_clients() -> None:
    """Make the clients again at next use (tests: each under its own moto)."""
    directory_clients.cache_clear()
    directory_signer.cache_clear()
    failover_clients.cache_clear()
    publisher_clients.cache_clear()
