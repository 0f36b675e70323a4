"""A user's signed device list (docs/protocol.md §8), on the user's PROFILE item.

Attributes this module owns on ("U#<userId>", "PROFILE") (dal/profiles.py reads them):
`devList`, the signed list as its compact JSON, and `devVer`, its version (absent: version
0, device 1 alone). Every path that reads the profile already (a send, an ack, a
handshake) learns the user's devices from the same read, so a user who never linked a
device costs nothing more, and one with devices no extra call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.profiles import Profile, profile_from, profile_key
from messenger_protocol.devices import DeviceList
from messenger_protocol.records import to_json

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEVICE_LIST = "devList"
DEVICE_LIST_VERSION = "devVer"


class DeviceListOutdated(Exception):
    """A newer (or equal) version was stored meanwhile: nothing was written."""


class DeviceLists:
    """Storing users' device lists."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def store(self, listing: DeviceList) -> Profile:
        """Store a signed list whose version is above the stored one (none stored: 0); the
        profile as it was right before the write: the list it replaced, and the
        connections open at that moment (the write leaves them as they are).
        DeviceListOutdated, nothing written, if another was stored first."""
        try:
            with dynamodb_errors():
                answer = self._client.update_item(
                    TableName=self._table,
                    Key=profile_key(listing.user_id),
                    UpdateExpression=f"SET {DEVICE_LIST} = :list, {DEVICE_LIST_VERSION} = :v",
                    ConditionExpression=f"attribute_exists(pk) AND (attribute_not_exists("
                    f"{DEVICE_LIST_VERSION}) OR {DEVICE_LIST_VERSION} < :v)",
                    ExpressionAttributeValues={
                        ":list": {"S": to_json(listing.to_wire())},
                        ":v": {"N": str(listing.version)},
                    },
                    ReturnValues="ALL_OLD",
                )
        except ConditionFailed:
            raise DeviceListOutdated(listing.user_id) from None
        return profile_from(answer["Attributes"])
