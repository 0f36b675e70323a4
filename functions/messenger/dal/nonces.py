"""Connect nonces in the Users table, and the registration that spends the first one.

Item layout (pk, sk):
- ("N#<userId>#<nonce>", "NONCE"): a connect nonce already used, until its TTL
  (`expiresAt`), with the connection attempt that spent it (`attempt`).

A new user's profile (dal/profiles.py), its first nonce and, when this cell counts its
source address, the counts of registrations from it (dal/rate_limits.py) are written in one
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger.dal.profiles import Profile, profile_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

NONCE = "NONCE"


class UserTaken(Exception):
    """Someone registered this userId first."""


class NonceReused(Exception):
    """This (userId, nonce) was accepted before."""


class RegistrationsExhausted(Exception):
    """The source address registered as many users as it may this hour."""


def nonce_item(user_id: str, nonce: str, expires_at: int, attempt: str) -> dict[str, Any]:
    """The item that records a spent connect nonce."""
    return {
        "pk": {"S": f"N#{user_id}#{nonce}"},
        "sk": {"S": NONCE},
        "expiresAt": {"N": str(expires_at)},
        # The connection attempt that spent it: the SDK's retry of our own write (after
        # a timeout) is that attempt again; a replay is another connection.
        "attempt": {"S": attempt},
    }


class Nonces:
    """Spending connect nonces once, and registering a user with its first one."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def register_with_nonce(
        self,
        profile: Profile,
        nonce: str,
        expires_at: int,
        attempt: str,
        registration_counts: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Create the user, spend the nonce and count the registration against its source,
        atomically: first come, first served, and nothing written when any part is refused.

        `registration_counts` are the counters' transaction actions (dal.rate_limits), none
        when another cell counts the source (logic/registrations.py). botocore
        gives the transaction an idempotency token that its retries reuse, so on DynamoDB a
        retry after a timeout does not find its own writes.
        """
        absent = "attribute_not_exists(pk)"
        try:
            with dynamodb_errors():
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": profile_item(profile),
                                "ConditionExpression": absent,
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": nonce_item(profile.user_id, nonce, expires_at, attempt),
                                "ConditionExpression": absent,
                            }
                        },
                        *registration_counts,  # type: ignore[list-item]
                    ]
                )
        except TransactionCanceled as canceled:
            failed = canceled.failed_conditions()
            if 0 in failed:
                raise UserTaken(profile.user_id) from None
            if 1 in failed:
                raise NonceReused(nonce) from None
            if any(index >= 2 for index in failed):
                raise RegistrationsExhausted(profile.user_id) from None
            raise

    def spend_nonce(
        self, user_id: str, nonce: str, expires_at: int, now_s: int, attempt: str
    ) -> None:
        """Record a connect nonce once; a use by another attempt (while remembered) raises
        NonceReused. The same attempt again is the SDK retrying our own write: accepted."""
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=nonce_item(user_id, nonce, expires_at, attempt),
                    # An expired record the TTL sweeper has not removed yet no longer counts.
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expiresAt < :now OR attempt = :attempt"
                    ),
                    ExpressionAttributeValues={
                        ":now": {"N": str(now_s)},
                        ":attempt": {"S": attempt},
                    },
                )
        except ConditionFailed:
            raise NonceReused(nonce) from None
