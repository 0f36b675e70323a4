"""The Queue table: what waits for a user until one of its devices acknowledges it.

Item layout (pk = recipient userId, sk = the item id clients put in `ack`):
- messages: sk "m#<sender>#<messageId>", so a resend of the same frame hits the same key
  and a conditional put keeps the first copy;
- receipts: sk "r#<seq>".
`seq` ("<store time µs>#<random>") orders the queue through the local index byOrder.
Every item carries `expiresAt` (epoch seconds, the table's TTL attribute); reads drop
expired items themselves because DynamoDB's sweeper can lag by days.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.contract import ORDER_INDEX
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger_protocol.frames import MessageFrame, ReceiptFrame
from messenger_protocol.names import ReceiptStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def message_item_id(sender: str, message_id: str) -> str:
    return f"m#{sender}#{message_id}"


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
        return f"r#{self.seq}"

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
    """The Queue table item that stores `entry` (what a put writes, and what it bills)."""
    common = {
        "pk": {"S": entry.recipient},
        "sk": {"S": entry.id},
        "seq": {"S": entry.seq},
        "expiresAt": {"N": str(entry.expires_at)},
    }
    if isinstance(entry, QueuedMessage):
        return common | {
            "kind": {"S": "message"},
            "sender": {"S": entry.sender},
            "messageId": {"S": entry.message_id},
            "body": {"S": entry.body},
            "nonce": {"S": entry.nonce},
            "sentAt": {"N": str(entry.sent_at)},
            "serverTs": {"N": str(entry.server_ts)},
        }
    return common | {
        "kind": {"S": "receipt"},
        "status": {"S": entry.status},
        "messageIds": {"L": [{"S": mid} for mid in entry.message_ids]},
        "by": {"S": entry.by},
        "at": {"N": str(entry.at)},
    }


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
        )
    return QueuedReceipt(
        recipient=item["pk"]["S"],
        status=ReceiptStatus(item["status"]["S"]),
        message_ids=tuple(value["S"] for value in item["messageIds"]["L"]),
        by=item["by"]["S"],
        at=int(item["at"]["N"]),
        seq=item["seq"]["S"],
        expires_at=int(item["expiresAt"]["N"]),
    )


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
                    ConditionExpression="attribute_not_exists(pk) OR expiresAt < :now",
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

    def get(self, owner: str, item_id: str) -> QueueItem | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": owner}, "sk": {"S": item_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def remove(self, owner: str, item_id: str) -> QueueItem | None:
        """Delete one of the owner's items; returns it if this call deleted it.

        The key always starts with the owner, so no one can delete another user's items,
        and only one of several concurrent acks of the same item gets it back.
        """
        response = self._client.delete_item(
            TableName=self._table,
            Key={"pk": {"S": owner}, "sk": {"S": item_id}},
            ReturnValues="ALL_OLD",
        )
        item = response.get("Attributes")
        return _from_item(item) if item else None

    def pending(self, owner: str, now_s: int) -> Iterator[QueueItem]:
        """The owner's unexpired items in store order, page by page."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": ORDER_INDEX,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeValues": {":pk": {"S": owner}, ":now": {"N": str(now_s)}},
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                yield _from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class ItemsMissing(Exception):
    """Some items of an acknowledgement were not (or no longer) in the owner's queue."""

    def __init__(self, item_ids: set[str]) -> None:
        super().__init__(sorted(item_ids))
        self.item_ids = item_ids


class AckConflict(Exception):
    """Another request touched the same items at the same moment; try again."""


def _receipt_append(table: str, receipt: QueuedReceipt, message_ids: list[str]) -> dict[str, Any]:
    return {
        "TableName": table,
        "Key": {"pk": {"S": receipt.recipient}, "sk": {"S": receipt.id}},
        "UpdateExpression": "SET messageIds = list_append(messageIds, :more)",
        "ExpressionAttributeValues": {":more": {"L": [{"S": mid} for mid in message_ids]}},
    }


class Acknowledgements:
    """Deleting acknowledged messages together with the receipts they cause, atomically."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def remove_messages(
        self,
        owner: str,
        item_ids: list[str],
        new_receipts: list[QueuedReceipt],
        appends: list[tuple[QueuedReceipt, list[str]]],
    ) -> None:
        """One transaction: delete the items (each must exist) and write the receipts.

        Raises ItemsMissing with the ids that were not there (nothing is written then),
        or AckConflict when a concurrent request held one of the items.
        """
        actions: list[Any] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": {"pk": {"S": owner}, "sk": {"S": item_id}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            for item_id in item_ids
        ]
        actions += [
            {"Put": {"TableName": self._table, "Item": queue_item(r)}} for r in new_receipts
        ]
        for receipt, more in appends:
            actions.append({"Update": _receipt_append(self._table, receipt, more)})
        try:
            with dynamodb_errors():
                self._client.transact_write_items(TransactItems=actions)
        except TransactionCanceled as canceled:
            missing = {item_ids[i] for i in canceled.failed_conditions() if i < len(item_ids)}
            if missing:
                raise ItemsMissing(missing) from None
            if canceled.conflicted:
                raise AckConflict() from None
            raise

    def remove_receipts(self, owner: str, item_ids: list[str]) -> None:
        """Delete acknowledged receipts; deleting one that is already gone is a no-op."""
        for start in range(0, len(item_ids), 25):
            pending: dict[str, Any] = {
                self._table: [
                    {"DeleteRequest": {"Key": {"pk": {"S": owner}, "sk": {"S": item_id}}}}
                    for item_id in item_ids[start : start + 25]
                ]
            }
            while pending:
                response = self._client.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
