"""A user's push devices and push collapse stamp, kept on the user's PROFILE item.

Attributes this module owns on ("U#<userId>", "PROFILE") (dal/profiles.py owns the rest):
- `push`: map deviceKey -> {"platform": S, "arn": S (SNS endpoint), "at": N (registered, ms),
  "d": S (which of the user's devices registered it, docs/protocol.md §8; absent: device 1)}.
  The key is a short hash of (platform, token): the raw token is kept only by SNS.
- `lastPushAt`: when the user's last push went out (ms), to collapse bursts.

They live on the profile because the send path already reads it (one GetItem) to find the
recipient's connections: a send to an offline user learns its devices at no extra read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.profiles import PROFILE, Profile, user_key
from messenger_protocol.limits import PRIMARY_DEVICE_ID

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PUSH = "push"
LAST_PUSH_AT = "lastPushAt"
DEVICE_KEY_CHARS = 20  # 80 bits of SHA-256: no collision among one user's devices


@dataclass(frozen=True)
class PushDevice:
    key: str
    platform: str
    endpoint_arn: str
    registered_at: int
    # Which of the user's devices (docs/protocol.md §8) registered the token.
    device_id: str = PRIMARY_DEVICE_ID


def device_key(platform: str, token: str) -> str:
    """The device's key in the `push` map; stable for a token, and no token in it."""
    return hashlib.sha256(f"{platform}\n{token}".encode()).hexdigest()[:DEVICE_KEY_CHARS]


def devices_of(profile: Profile) -> dict[str, PushDevice]:
    """The push devices recorded on a profile (read from the attributes it keeps raw)."""
    raw = profile.extra.get(PUSH, {}).get("M", {})
    devices: dict[str, PushDevice] = {}
    for key, value in raw.items():
        fields = value.get("M", {})
        try:
            devices[key] = PushDevice(
                key=key,
                platform=fields["platform"]["S"],
                endpoint_arn=fields["arn"]["S"],
                registered_at=int(fields["at"]["N"]),
                device_id=fields["d"]["S"] if "d" in fields else PRIMARY_DEVICE_ID,
            )
        except (KeyError, ValueError):
            continue  # a record we cannot read is never pushed to; re-registering fixes it
    return devices


def has_device_map(profile: Profile) -> bool:
    return PUSH in profile.extra


class DeviceMapChanged(Exception):
    """The `push` map changed between our read and our write: read the profile again."""


class PushDevices:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, user_id: str) -> dict[str, Any]:
        return {"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}}

    def save(
        self,
        user_id: str,
        device: PushDevice,
        *,
        map_exists: bool,
        evict: PushDevice | None = None,
    ) -> None:
        """Record (or refresh) a device, dropping `evict` in the same write.

        A nested SET needs the map to exist and a whole-map SET would overwrite other
        devices, so the caller says which case its read saw and the condition holds it to
        that; DeviceMapChanged means read again.
        """
        record = {
            "M": {
                "platform": {"S": device.platform},
                "arn": {"S": device.endpoint_arn},
                "at": {"N": str(device.registered_at)},
            }
        }
        if device.device_id != PRIMARY_DEVICE_ID:
            record["M"]["d"] = {"S": device.device_id}
        names = {"#p": PUSH}
        values: dict[str, Any]
        if map_exists:
            names["#k"] = device.key
            update = "SET #p.#k = :d"
            if evict is not None and evict.key != device.key:
                names["#old"] = evict.key
                update += " REMOVE #p.#old"
            condition = "attribute_exists(#p)"
            values = {":d": record}
        else:
            update = "SET #p = :m"
            condition = "attribute_exists(pk) AND attribute_not_exists(#p)"
            values = {":m": {"M": {device.key: record}}}
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(user_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ConditionFailed:
            raise DeviceMapChanged(user_id) from None

    def remove(self, user_id: str, key: str, endpoint_arn: str) -> bool:
        """Forget a device if it still points at that endpoint; False if it did not."""
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(user_id),
                    UpdateExpression="REMOVE #p.#k",
                    ConditionExpression="#p.#k.arn = :arn",
                    ExpressionAttributeNames={"#p": PUSH, "#k": key},
                    ExpressionAttributeValues={":arn": {"S": endpoint_arn}},
                )
        except ConditionFailed:
            return False
        return True

    def claim_push(self, user_id: str, now_ms: int, min_interval_ms: int) -> bool:
        """Stamp lastPushAt if this user may get a push now; False if a recent one covers it.

        A push is due when none went out yet, when the last one is older than the
        interval, or when the user has been online since it (lastSeen, stamped by
        dal/profiles.py on every close, is later): a new stretch offline gets its own push.
        One conditional write decides it, so concurrent sends still make one push.
        """
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(user_id),
                    UpdateExpression="SET #last = :now",
                    ConditionExpression=(
                        "attribute_exists(pk) AND (attribute_not_exists(#last)"
                        " OR #last < :cutoff OR #last < lastSeen)"
                    ),
                    ExpressionAttributeNames={"#last": LAST_PUSH_AT},
                    ExpressionAttributeValues={
                        ":now": {"N": str(now_ms)},
                        ":cutoff": {"N": str(now_ms - min_interval_ms)},
                    },
                )
        except ConditionFailed:
            return False
        return True
