"""Many items at a time, done whole: BatchGetItem and BatchWriteItem in chunks of DynamoDB's
limits, with what DynamoDB leaves unprocessed (under throttling) tried again after a short
backoff; a Query read page after page."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
# Unprocessed requests are a throttle: back off (20, 40, 80... ms) before asking again.
_BACKOFF_SECONDS = 0.02
_MAX_BACKOFF_SECONDS = 1.0


def _pause(attempt: int) -> None:
    if attempt:
        time.sleep(min(_MAX_BACKOFF_SECONDS, _BACKOFF_SECONDS * 2 ** (attempt - 1)))


def write_all(client: DynamoDBClient, table: str, requests: Sequence[Any]) -> None:
    """Every PutRequest / DeleteRequest done, 25 at a time, in the order given per chunk."""
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending: dict[str, Any] = {table: list(requests[start : start + BATCH_WRITE_LIMIT])}
        attempt = 0
        while pending:
            _pause(attempt)
            response = client.batch_write_item(RequestItems=pending)
            pending = dict(response.get("UnprocessedItems") or {})
            attempt += 1


def get_all(
    client: DynamoDBClient,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    consistent: bool = False,
    projection: str | None = None,
) -> list[dict[str, Any]]:
    """The items that exist among `keys`, 100 keys a call, in no particular order."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            "Keys": list(keys[start : start + BATCH_GET_LIMIT]),
            "ConsistentRead": consistent,
        }
        if projection:
            request["ProjectionExpression"] = projection
        pending: dict[str, Any] = {table: request}
        attempt = 0
        while pending:
            _pause(attempt)
            response = client.batch_get_item(RequestItems=pending)
            found += response["Responses"].get(table, [])
            pending = dict(response.get("UnprocessedKeys") or {})
            attempt += 1
    return found


def query_pages(client: DynamoDBClient, query: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """The items of a Query (its keyword arguments), a page at a time."""
    kwargs = dict(query)
    while True:
        response = client.query(**kwargs)
        yield response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
