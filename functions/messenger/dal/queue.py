"""The Queue table: what waits for each device of a user until it acknowledges it.

Every device has its own queue (docs/protocol.md §8): pk = `queue_owner(userId,
deviceId)`, the userId alone for device 1 (so a user who never linked a device has the
queue, and the costs, of before devices) and "<userId>#<deviceId>" for a linked one.

Item layout (pk = the recipient device's queue, sk = the item id clients put in `ack`):
- messages: sk "m#<sender>#<messageId>", so a resend of the same frame hits the same key
  and a conditional put keeps the first copy; their `seq` attribute puts them in the
  local index byOrder (keys only), which gives their store order;
- receipts: sk "r#<seq>", already in store order in the table itself, so they carry no
  `seq` attribute and cost no index write;
- ack marks: sk "t#<sender>#<messageId>" in device 1's queue, the set of the recipient's
  devices (`acked`) that acknowledged a message sealed for several of them, so that its
  `delivered` receipt is queued once, at the first; deleted with the last copy, since
  nothing about a message stays once it is acknowledged (never read by `sync`, never acked).
A copy for one of several devices carries `fromDevice`, `key`, `keyNonce`, and `multiDevice`
and `copies` (how many of its devices got one) when the recipient got more than one copy; a
copy of one's own message carries `to`.
`seq` ("<store time µs, 17 digits>#<8 random hex>") orders the whole queue: a page of
`sync` merges the two ordered runs. Every item carries `expiresAt` (epoch seconds, the
table's TTL attribute); reads drop expired items themselves because DynamoDB's sweeper
can lag by days.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.contract import ORDER_INDEX
from messenger.dal.batch import get_all, query_pages, write_all
from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger_protocol.frames import MessageFrame, ReceiptFrame
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import ReceiptStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


# The item ids below are built and read here only: clients treat them as opaque.
ITEM_ID_SEPARATOR = "#"
MESSAGE_PREFIX = "m" + ITEM_ID_SEPARATOR
RECEIPT_PREFIX = "r" + ITEM_ID_SEPARATOR
FIRST_ACK_PREFIX = "t" + ITEM_ID_SEPARATOR
# Above every receipt key: "r#" + seq, where seq starts with a digit.
_RECEIPTS_END = RECEIPT_PREFIX + "~"
# Between a user id and a device id in a linked device's queue key (no user id has one).
DEVICE_SEPARATOR = "#"


def queue_owner(user_id: str, device_id: str = PRIMARY_DEVICE_ID) -> str:
    """The queue (partition key) of one device of a user: device 1's is the user id."""
    if device_id == PRIMARY_DEVICE_ID:
        return user_id
    return f"{user_id}{DEVICE_SEPARATOR}{device_id}"


def user_of_queue(owner: str) -> str:
    """The user whose device's queue this is (the inverse of `queue_owner`)."""
    return owner.partition(DEVICE_SEPARATOR)[0]


def device_of_queue(owner: str) -> str:
    """The device whose queue this is."""
    return owner.partition(DEVICE_SEPARATOR)[2] or PRIMARY_DEVICE_ID


def message_item_id(sender: str, message_id: str) -> str:
    """The item id of a message: its sender and messageId name it."""
    return f"{MESSAGE_PREFIX}{sender}{ITEM_ID_SEPARATOR}{message_id}"


def parse_message_item_id(item_id: str) -> tuple[str, str] | None:
    """(sender, messageId) of a message item id; None for anything else."""
    if not item_id.startswith(MESSAGE_PREFIX):
        return None
    sender, separator, message_id = item_id.removeprefix(MESSAGE_PREFIX).partition(
        ITEM_ID_SEPARATOR
    )
    if not sender or not separator or not message_id or ITEM_ID_SEPARATOR in message_id:
        return None
    return sender, message_id


def receipt_item_id(seq: str) -> str:
    """The item id of a receipt: its seq, which orders it in the queue."""
    return RECEIPT_PREFIX + seq


def is_receipt_item_id(item_id: str) -> bool:
    """Shaped like a receipt's item id (whether such a receipt exists or not)."""
    return item_id.startswith(RECEIPT_PREFIX)


def is_seq(value: str) -> bool:
    """Shaped like a seq: 17 digits, '#', 8 lowercase hex digits."""
    digits, _, tail = value.partition("#")
    return (
        len(digits) == 17
        and digits.isdigit()
        and len(tail) == 8
        and all(c in "0123456789abcdef" for c in tail)
    )


# A queued item is dead from the second its `expiresAt` names (docs/protocol.md §4). Every
# read, the conditional put that keeps a resend from storing a second copy, and the count of
# what a queue holds use this one rule (in Python and in DynamoDB's expressions), so that a
# copy no read would deliver never answers a resend as if the message were still stored.
_LIVE = "expiresAt > :now"
_DEAD = "expiresAt <= :now"


def is_live(expires_at: int, now_s: int) -> bool:
    """Whether an item that expires at `expires_at` (epoch seconds) is still queued."""
    return expires_at > now_s


def new_seq(now_us: int) -> str:
    return f"{now_us:017d}#{secrets.token_hex(4)}"


@dataclass(frozen=True)
class QueuedMessage:
    recipient: str
    sender: str
    message_id: str
    body: str
    nonce: str
    sent_at: int
    server_ts: int
    seq: str
    expires_at: int
    # A copy sealed for one of several devices (docs/protocol.md §8); None: a v1.1 message.
    from_device: str | None = None
    key: str | None = None
    key_nonce: str | None = None
    # On a copy of the recipient's own message, sent from another of its devices: the peer.
    to: str | None = None
    # How many of the recipient's devices got a copy: more than one, the first ack tells
    # the sender and the last deletes the ack mark (0: several, how many not recorded).
    copies: int = 1

    @property
    def shared(self) -> bool:
        return self.copies != 1

    @property
    def id(self) -> str:
        return message_item_id(self.sender, self.message_id)

    def frame(self) -> MessageFrame:
        return MessageFrame(
            id=self.id,
            message_id=self.message_id,
            sender=self.sender,
            body=self.body,
            nonce=self.nonce,
            sent_at=self.sent_at,
            server_ts=self.server_ts,
            from_device=self.from_device,
            key=self.key,
            key_nonce=self.key_nonce,
            to=self.to,
        )


@dataclass(frozen=True)
class QueuedReceipt:
    recipient: str  # the original sender, who gets told
    status: ReceiptStatus
    message_ids: tuple[str, ...]
    by: str
    at: int
    seq: str
    expires_at: int

    @property
    def id(self) -> str:
        return receipt_item_id(self.seq)

    def frame(self) -> ReceiptFrame:
        return ReceiptFrame(
            id=self.id,
            status=self.status,
            message_ids=list(self.message_ids),
            by=self.by,
            at=self.at,
        )


QueueItem = QueuedMessage | QueuedReceipt


def queue_item(entry: QueueItem) -> dict[str, Any]:
    """The DynamoDB item of a queue entry."""
    common = {
        "pk": {"S": entry.recipient},
        "sk": {"S": entry.id},
        "expiresAt": {"N": str(entry.expires_at)},
    }
    if isinstance(entry, QueuedMessage):
        copy: dict[str, Any] = {}
        for name, value in (
            ("fromDevice", entry.from_device),
            ("key", entry.key),
            ("keyNonce", entry.key_nonce),
            ("to", entry.to),
        ):
            if value is not None:
                copy[name] = {"S": value}
        if entry.shared:
            copy["multiDevice"] = {"BOOL": True}
            copy["copies"] = {"N": str(entry.copies)}
        return (
            common
            | copy
            | {
                "seq": {"S": entry.seq},
                "kind": {"S": "message"},
                "sender": {"S": entry.sender},
                "messageId": {"S": entry.message_id},
                "body": {"S": entry.body},
                "nonce": {"S": entry.nonce},
                "sentAt": {"N": str(entry.sent_at)},
                "serverTs": {"N": str(entry.server_ts)},
            }
        )
    return common | {
        "kind": {"S": "receipt"},
        "status": {"S": entry.status},
        "messageIds": {"L": [{"S": mid} for mid in entry.message_ids]},
        "by": {"S": entry.by},
        "at": {"N": str(entry.at)},
    }


@dataclass(frozen=True)
class AckMark:
    """What an ack mark says once a device is added: whether that device was the first of
    its user's to acknowledge the message, and how many have."""

    first: bool
    devices: int


def _ack_mark_key(user_id: str, sender: str, message_id: str) -> dict[str, Any]:
    sort_key = f"{FIRST_ACK_PREFIX}{sender}{ITEM_ID_SEPARATOR}{message_id}"
    return {"pk": {"S": queue_owner(user_id)}, "sk": {"S": sort_key}}


def _copies(item: dict[str, Any]) -> int:
    """How many devices got a copy of a queued message (0: several, how many unknown)."""
    if not item.get("multiDevice", {}).get("BOOL", False):
        return 1
    return int(item.get("copies", {}).get("N", "0"))


def _from_item(item: dict[str, Any]) -> QueueItem:
    if item["kind"]["S"] == "message":
        return QueuedMessage(
            recipient=item["pk"]["S"],
            sender=item["sender"]["S"],
            message_id=item["messageId"]["S"],
            body=item["body"]["S"],
            nonce=item["nonce"]["S"],
            sent_at=int(item["sentAt"]["N"]),
            server_ts=int(item["serverTs"]["N"]),
            seq=item["seq"]["S"],
            expires_at=int(item["expiresAt"]["N"]),
            from_device=_text(item, "fromDevice"),
            key=_text(item, "key"),
            key_nonce=_text(item, "keyNonce"),
            to=_text(item, "to"),
            copies=_copies(item),
        )
    return QueuedReceipt(
        recipient=item["pk"]["S"],
        status=ReceiptStatus(item["status"]["S"]),
        message_ids=tuple(value["S"] for value in item["messageIds"]["L"]),
        by=item["by"]["S"],
        at=int(item["at"]["N"]),
        seq=item["sk"]["S"].removeprefix(RECEIPT_PREFIX),
        expires_at=int(item["expiresAt"]["N"]),
    )


def _text(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


@dataclass(frozen=True)
class Page:
    """Part of a queue in store order; `more` when items after `end` may remain."""

    items: list[QueueItem]
    more: bool
    # The seq the next page starts after: the last item's, or further when the page
    # stopped on items it could not use (expired, or acknowledged meanwhile).
    end: str | None


class Queue:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def store_message(self, message: QueuedMessage, now_s: int) -> tuple[QueuedMessage, bool]:
        """Store a message once. Returns (the stored copy, True if this call stored it).

        A resend of the same (sender, messageId) finds the first copy and returns it
        unchanged: the first stored copy wins and nothing is written.
        """
        try:
            with dynamodb_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=queue_item(message),
                    # A copy past its expiry is dead even if the TTL sweeper has not removed it.
                    ConditionExpression=f"attribute_not_exists(pk) OR {_DEAD}",
                    ExpressionAttributeValues={":now": {"N": str(now_s)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailed as failed:
            if failed.item:
                stored = _from_item(failed.item)
                assert isinstance(stored, QueuedMessage)
                return stored, False
            # Some backends omit the old item: read it (strongly) instead.
            found = self.get(message.recipient, message.id)
            if isinstance(found, QueuedMessage):
                return found, False
            raise
        return message, True

    def store_receipt(self, receipt: QueuedReceipt) -> None:
        self._client.put_item(TableName=self._table, Item=queue_item(receipt))

    def store_receipts(self, receipts: Sequence[QueuedReceipt]) -> None:
        """Write receipts (one PutItem, or BatchWriteItem for several); returns once all are."""
        if len(receipts) == 1:
            self.store_receipt(receipts[0])
            return
        write_all(
            self._client,
            self._table,
            [{"PutRequest": {"Item": queue_item(receipt)}} for receipt in receipts],
        )

    def get(self, owner: str, item_id: str) -> QueueItem | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": owner}, "sk": {"S": item_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def present(self, owner: str, item_ids: Sequence[str]) -> set[str]:
        """Which of these ids are items in the owner's queue now (a strongly consistent read).

        The key always starts with the owner, so another user's ids are never found.
        """
        keys = [{"pk": {"S": owner}, "sk": {"S": item_id}} for item_id in item_ids]
        found = get_all(self._client, self._table, keys, consistent=True, projection="sk")
        return {item["sk"]["S"] for item in found}

    def copies_among(self, owner: str, item_ids: Sequence[str]) -> dict[str, int]:
        """Which of these ids are items in the owner's queue now (a strongly consistent
        read), each with how many of its recipient's devices got a copy (`copies`: 1 for
        a message to one device)."""
        keys = [{"pk": {"S": owner}, "sk": {"S": item_id}} for item_id in item_ids]
        found = get_all(
            self._client, self._table, keys, consistent=True, projection="sk, multiDevice, copies"
        )
        return {item["sk"]["S"]: _copies(item) for item in found}

    def mark_acknowledged(
        self, user_id: str, device_id: str, sender: str, message_id: str, expires_at: int
    ) -> AckMark:
        """Add a device to the devices that acknowledged a shared message (one UpdateItem
        on the ack mark in device 1's queue, gone with the message's TTL at the latest):
        whether it is the first (two devices at the same instant: one is; the same
        device twice: the second is not), and how many have now."""
        with dynamodb_errors():
            answer = self._client.update_item(
                TableName=self._table,
                Key=_ack_mark_key(user_id, sender, message_id),
                UpdateExpression="ADD acked :device SET expiresAt = if_not_exists(expiresAt, :e)",
                ExpressionAttributeValues={
                    ":device": {"SS": [device_id]},
                    ":e": {"N": str(expires_at)},
                },
                ReturnValues="ALL_OLD",
            )
        before = set(answer.get("Attributes", {}).get("acked", {}).get("SS", []))
        return AckMark(first=not before, devices=len(before | {device_id}))

    def delete_ack_marks(self, user_id: str, messages: Sequence[tuple[str, str]]) -> None:
        """Delete the ack marks of (sender, messageId): every copy is acknowledged, or the
        first device's receipt was not stored (the next device's ack is first again)."""
        self.delete(
            queue_owner(user_id),
            [_ack_mark_key(user_id, sender, mid)["sk"]["S"] for sender, mid in messages],
        )

    def held_messages(self, owners: Sequence[str], now_s: int) -> set[tuple[str, str]]:
        """The unexpired messages, (sender, messageId), that these queues (the devices of
        one user) hold, leaving out copies of the user's own messages: what the queue caps
        count. One Query of each queue, keys and expiry only (a rare path: a device
        removed)."""
        held: set[tuple[str, str]] = set()
        for owner in owners:
            query = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :m)",
                "ExpressionAttributeValues": {":pk": {"S": owner}, ":m": {"S": MESSAGE_PREFIX}},
                "ProjectionExpression": "sk, expiresAt",
                "ConsistentRead": True,
            }
            for items in query_pages(self._client, query):
                for item in items:
                    parsed = parse_message_item_id(item["sk"]["S"])
                    if parsed is None or parsed[0] == user_of_queue(owner):
                        continue
                    if is_live(int(item["expiresAt"]["N"]), now_s):
                        held.add(parsed)
        return held

    def ack_marks(self, user_id: str) -> list[tuple[str, str]]:
        """(sender, messageId) of every ack mark of the user: one Query, keys only."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)",
            "ExpressionAttributeValues": {
                ":pk": {"S": queue_owner(user_id)},
                ":t": {"S": FIRST_ACK_PREFIX},
            },
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        marks: list[tuple[str, str]] = []
        for items in query_pages(self._client, query):
            for item in items:
                sender, _, message_id = (
                    item["sk"]["S"].removeprefix(FIRST_ACK_PREFIX).partition(ITEM_ID_SEPARATOR)
                )
                marks.append((sender, message_id))
        return marks

    def delete_queue(self, owner: str) -> int:
        """Delete everything in one device's queue (a removed device, docs/protocol.md §8):
        a Query of its own partition, keys only, and batched deletes; how many went."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": owner}},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        deleted = 0
        for items in query_pages(self._client, query):
            self.delete(owner, [item["sk"]["S"] for item in items])
            deleted += len(items)
        return deleted

    def delete(self, owner: str, item_ids: Iterable[str]) -> None:
        """Delete items of the owner's queue; deleting one already gone is a no-op."""
        write_all(
            self._client,
            self._table,
            [
                {"DeleteRequest": {"Key": {"pk": {"S": owner}, "sk": {"S": item_id}}}}
                for item_id in item_ids
            ],
        )

    def page(self, owner: str, after: str | None, now_s: int, limit: int) -> Page:
        """Up to `limit` unexpired items of the owner stored after seq `after`, in order.

        Two ordered runs are merged: messages by the index byOrder (keys only; the items
        are then read by key) and receipts by their own keys. Each run is read `limit`
        + 1 deep, so a queue of exactly `limit` items needs no second, empty page.
        """
        messages, messages_end = self._message_keys_after(owner, after, limit + 1)
        if len(messages) > limit:
            # The extra key only says that more follow: it is not read (the page ends
            # at the last message that is).
            messages, messages_end = messages[:limit], messages[limit - 1][0]
        receipts, receipts_end = self._receipts_after(owner, after, now_s, limit + 1)
        # A run that stopped early may hold more items past its end: nothing after the
        # nearer of those ends is certain yet, so the page stops there.
        ends = [end for end in (messages_end, receipts_end) if end is not None]
        horizon = min(ends) if ends else None
        fetched = self._messages_by_key(owner, [key for _, key in messages], now_s)
        ordered = [
            item
            for _, item in heapq.merge(
                # A message acknowledged and sent again since the index was read is a
                # new copy with a later seq: that copy comes in its own place.
                ((seq, fetched[key]) for seq, key in messages if _same(fetched.get(key), seq)),
                ((receipt.seq, receipt) for receipt in receipts),
                key=lambda pair: pair[0],
            )
            if horizon is None or item.seq <= horizon
        ]
        if len(ordered) > limit:
            return Page(ordered[:limit], True, ordered[limit - 1].seq)
        if horizon is not None:
            return Page(ordered, True, horizon)
        return Page(ordered, False, ordered[-1].seq if ordered else after)

    def _message_keys_after(
        self, owner: str, after: str | None, limit: int
    ) -> tuple[list[tuple[str, str]], str | None]:
        """(seq, item id) of the owner's messages after `after`, in store order, and where
        the read stopped if it may have left some."""
        values: dict[str, Any] = {":pk": {"S": owner}}
        condition = "pk = :pk"
        if after is not None:
            condition += " AND seq > :after"
            values[":after"] = {"S": after}
        response = self._client.query(
            TableName=self._table,
            IndexName=ORDER_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            Limit=limit,
        )
        keys = [(item["seq"]["S"], item["sk"]["S"]) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return keys, (last["seq"]["S"] if last else None)

    def _messages_by_key(self, owner: str, item_ids: list[str], now_s: int) -> dict[str, QueueItem]:
        """The unexpired messages among these ids (one acknowledged meanwhile is absent)."""
        keys = [{"pk": {"S": owner}, "sk": {"S": item_id}} for item_id in item_ids]
        found = get_all(self._client, self._table, keys, consistent=True)
        return {
            item["sk"]["S"]: _from_item(item)
            for item in found
            if is_live(int(item["expiresAt"]["N"]), now_s)
        }

    def _receipts_after(
        self, owner: str, after: str | None, now_s: int, limit: int
    ) -> tuple[list[QueuedReceipt], str | None]:
        """The owner's unexpired receipts after `after`, in store order, and where the read
        stopped if it may have left some."""
        # BETWEEN is inclusive: the receipt whose seq is `after` itself is skipped below.
        low = receipt_item_id(after) if after is not None else RECEIPT_PREFIX
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            FilterExpression=_LIVE,
            ExpressionAttributeValues={
                ":pk": {"S": owner},
                ":low": {"S": low},
                ":high": {"S": _RECEIPTS_END},
                ":now": {"N": str(now_s)},
            },
            ConsistentRead=True,
            Limit=limit,
        )
        receipts = [
            receipt
            for receipt in map(_from_item, response.get("Items", []))
            if isinstance(receipt, QueuedReceipt) and receipt.seq != after
        ]
        last = response.get("LastEvaluatedKey")
        return receipts, (last["sk"]["S"].removeprefix(RECEIPT_PREFIX) if last else None)


def _same(item: QueueItem | None, seq: str) -> bool:
    return item is not None and item.seq == seq
