"""boto3 clients by service and region, made once with one `Config` (its retries and
timeouts: what the caller can afford), then kept for the container's life."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient


class Clients:
    """boto3 clients by service and region, each made when first asked for, then kept
    (None as a region: the function's own). Drop the object to make them again."""

    def __init__(self, config: Config | None = None) -> None:
        self._config = config
        self._made: dict[tuple[str, str | None], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        """The `service` client of `region`, untyped (the typed ones below say what for)."""
        key = (service, region)
        if key not in self._made:
            self._made[key] = boto3.client(  # type: ignore[call-overload]
                service, region_name=region, config=self._config
            )
        return self._made[key]

    def s3(self, region: str | None = None) -> S3Client:
        client: S3Client = self.client("s3", region)
        return client

    def sns(self, region: str | None = None) -> SNSClient:
        client: SNSClient = self.client("sns", region)
        return client

    def dynamodb(self, region: str | None = None) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb", region)
        return client
