"""The Users table's profiles: a user's keys, live connections and last-seen stamp.

The Users table keeps each user's items under the partition "U#<userId>", one module per
item family:
- ("U#<userId>", "PROFILE"): this module's, below;
- connect nonces, and the registration that writes the profile: dal/nonces.py;
- watch lists, presence subscriptions and other cells' interests: dal/subscriptions.py;
- who may see the user's presence (contact items, and `vis*` on the profile):
  dal/contacts.py;
- push devices (`push`, `lastPushAt` on the profile): dal/push_devices.py;
- whom the user blocks (block items, and `blockCount` on the profile): dal/blocks.py;
- the signed device list (`devList`, `devVer` on the profile): dal/device_lists.py.
Items of the cell itself have partitions of their own (dal/server_keys.py,
dal/cell_generation.py); registration counters live in the Limits table.

The PROFILE item holds the public keys, `createdAt`, `conns` (map connectionId ->
connectedAt ms for device 1, or {"at": connectedAt, "d": deviceId} for a linked device,
docs/protocol.md §8) and `lastSeen`. Keeping the live connections on the profile item means
one GetItem answers both "does the recipient exist" and "where is it connected", and one
UpdateItem both records a connection and tells whether the user just came online. The
attributes other modules own are read with it (`Profile` carries them) and written by
their owners only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from messenger.contract import STALE_CONNECTION_SECONDS
from messenger.dal.batch import get_all
from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger_protocol.devices import DeviceList
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import PresenceVisibility

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROFILE = "PROFILE"
USER_PREFIX = "U#"


def user_key(user_id: str) -> str:
    """The partition key of a user's items."""
    return f"{USER_PREFIX}{user_id}"


def user_of_key(pk: str) -> str:
    """The user whose partition key this is (the inverse of `user_key`)."""
    return pk.removeprefix(USER_PREFIX)


def profile_key(user_id: str) -> dict[str, Any]:
    """The key of a user's PROFILE item."""
    return {"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}}


@dataclass(frozen=True)
class Profile:
    user_id: str
    sign_key: str
    box_key: str
    created_at: int
    connections: dict[str, int] = field(default_factory=dict)  # connectionId -> connectedAt
    last_seen: int | None = None
    # Who may see the user's presence (dal/contacts.py writes these).
    visibility: PresenceVisibility = PresenceVisibility.EVERYONE
    visibility_generation: str | None = None
    visibility_digest: str | None = None
    contact_count: int = 0
    # How many users this one blocks (dal/blocks.py writes it); 0: no block item to read.
    blocked_count: int = 0
    # The device of each connection not of device 1 (docs/protocol.md §8).
    connection_devices: dict[str, str] = field(default_factory=dict)
    # The signed device list as stored (dal/device_lists.py writes it); None: version 0.
    stored_devices: DeviceList | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw attributes other features own

    def live_connections(self, now_ms: int) -> list[str]:
        """Connections that can still be open: API Gateway closes every socket after 2 h."""
        oldest = now_ms - STALE_CONNECTION_SECONDS * 1000
        return sorted(cid for cid, at in self.connections.items() if at >= oldest)

    def stale_connections(self, now_ms: int) -> list[str]:
        live = set(self.live_connections(now_ms))
        return sorted(cid for cid in self.connections if cid not in live)

    def is_online(self, now_ms: int) -> bool:
        return bool(self.live_connections(now_ms))

    @property
    def devices(self) -> DeviceList:
        """The user's device list: the stored one, or device 1 alone (version 0)."""
        if self.stored_devices is not None:
            return self.stored_devices
        return DeviceList.unlinked(self.user_id, self.sign_key, self.box_key)

    def device_of(self, connection_id: str) -> str:
        """Which of the user's devices holds a connection."""
        return self.connection_devices.get(connection_id, PRIMARY_DEVICE_ID)

    def live_connections_of(self, device_id: str, now_ms: int) -> list[str]:
        """The live connections of one device."""
        return [c for c in self.live_connections(now_ms) if self.device_of(c) == device_id]


_KNOWN = {
    "pk",
    "sk",
    "userId",
    "signKey",
    "boxKey",
    "createdAt",
    "conns",
    "lastSeen",
    "vis",
    "visGen",
    "visDigest",
    "visCount",
    "blockCount",
    "devList",
    "devVer",
}


@dataclass(frozen=True)
class ClosedConnection:
    """A connection just forgotten: the profile after, and what the close overwrote."""

    profile: Profile
    opened_at: int  # ms
    seen_before: int | None  # the user's previous close (ms), if any


def _connections_of(conns: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """(connectionId -> connectedAt, connectionId -> deviceId of a linked device) of a
    `conns` map: device 1's entries are a number, a linked device's a map {at, d}."""
    connected_at: dict[str, int] = {}
    devices: dict[str, str] = {}
    for cid, value in conns.items():
        if "M" in value:
            connected_at[cid] = int(value["M"]["at"]["N"])
            devices[cid] = value["M"]["d"]["S"]
        else:
            connected_at[cid] = int(value["N"])
    return connected_at, devices


def profile_from(item: dict[str, Any]) -> Profile:
    """The profile a PROFILE item holds."""
    connections, connection_devices = _connections_of(item.get("conns", {}).get("M", {}))
    return Profile(
        user_id=item["userId"]["S"],
        sign_key=item["signKey"]["S"],
        box_key=item["boxKey"]["S"],
        created_at=int(item["createdAt"]["N"]),
        connections=connections,
        last_seen=int(item["lastSeen"]["N"]) if "lastSeen" in item else None,
        visibility=PresenceVisibility(item["vis"]["S"])
        if "vis" in item
        else PresenceVisibility.EVERYONE,
        visibility_generation=item["visGen"]["S"] if "visGen" in item else None,
        visibility_digest=item["visDigest"]["S"] if "visDigest" in item else None,
        contact_count=int(item["visCount"]["N"]) if "visCount" in item else 0,
        blocked_count=int(item["blockCount"]["N"]) if "blockCount" in item else 0,
        connection_devices=connection_devices,
        stored_devices=DeviceList.read(json.loads(item["devList"]["S"]))
        if "devList" in item
        else None,
        extra={name: value for name, value in item.items() if name not in _KNOWN},
    )


def profile_item(profile: Profile) -> dict[str, Any]:
    """The PROFILE item of a newly registered user (no connections yet)."""
    return profile_key(profile.user_id) | {
        "userId": {"S": profile.user_id},
        "signKey": {"S": profile.sign_key},
        "boxKey": {"S": profile.box_key},
        "createdAt": {"N": str(profile.created_at)},
        "conns": {"M": {}},
    }


class Profiles:
    """Reading profiles, and recording the connections that open and close on them."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get_profile(self, user_id: str, *, consistent: bool = False) -> Profile | None:
        response = self._client.get_item(
            TableName=self._table, Key=profile_key(user_id), ConsistentRead=consistent
        )
        item = response.get("Item")
        return profile_from(item) if item else None

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """Several profiles by key (BatchGetItem, 100 at a time); unknown users are absent."""
        keys = [profile_key(uid) for uid in dict.fromkeys(user_ids)]
        profiles = (profile_from(item) for item in get_all(self._client, self._table, keys))
        return {profile.user_id: profile for profile in profiles}

    def add_connection(
        self,
        user_id: str,
        connection_id: str,
        connected_at: int,
        device_id: str = PRIMARY_DEVICE_ID,
    ) -> Profile:
        """Record a live connection of one of the user's devices; returns the profile as it
        is after the write. Device 1's entry is the number alone, as before devices."""
        at: dict[str, Any] = {"N": str(connected_at)}
        if device_id != PRIMARY_DEVICE_ID:
            at = {"M": {"at": at, "d": {"S": device_id}}}
        response = self._client.update_item(
            TableName=self._table,
            Key=profile_key(user_id),
            UpdateExpression="SET conns.#cid = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#cid": connection_id},
            ExpressionAttributeValues={":at": at},
            ReturnValues="ALL_NEW",
        )
        return profile_from(response["Attributes"])

    def remove_connection(
        self, user_id: str, connection_id: str, now_ms: int
    ) -> ClosedConnection | None:
        """Forget a connection and stamp lastSeen. None if it was already gone (idempotent).

        lastSeen is stamped on every close; it is only shown once no connection is left,
        and then it is the time the last one closed. The item as it was comes back (one
        write either way), so the caller also learns when the connection opened and when
        the user's previous close was: what tells a flap from a quiet change.
        """
        try:
            with dynamodb_errors():
                response = self._client.update_item(
                    TableName=self._table,
                    Key=profile_key(user_id),
                    UpdateExpression="REMOVE conns.#cid SET lastSeen = :now",
                    ConditionExpression="attribute_exists(conns.#cid)",
                    ExpressionAttributeNames={"#cid": connection_id},
                    ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                    ReturnValues="ALL_OLD",
                )
        except ConditionFailed:
            return None
        before = profile_from(response["Attributes"])
        after = replace(
            before,
            connections={c: at for c, at in before.connections.items() if c != connection_id},
            connection_devices={
                c: d for c, d in before.connection_devices.items() if c != connection_id
            },
            last_seen=now_ms,
        )
        return ClosedConnection(after, before.connections[connection_id], before.last_seen)

    def forget_connection(self, user_id: str, connection_id: str) -> None:
        """Undo add_connection for a $connect that failed: no lastSeen, no presence change."""
        self._client.update_item(
            TableName=self._table,
            Key=profile_key(user_id),
            UpdateExpression="REMOVE conns.#cid",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#cid": connection_id},
        )

    def prune_connections(self, user_id: str, connection_ids: Iterable[str]) -> None:
        """Drop connections recorded so long ago that API Gateway has surely closed them."""
        ids = list(connection_ids)
        if not ids:
            return
        names = {f"#c{i}": cid for i, cid in enumerate(ids)}
        self._client.update_item(
            TableName=self._table,
            Key=profile_key(user_id),
            UpdateExpression="REMOVE " + ", ".join(f"conns.{name}" for name in names),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
        )
