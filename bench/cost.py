"""Cost per million messages at AWS list prices, for the full life of a message.

Life of one message: alice sends it (sendMessage, ack as route response), bob's device
gets it live, bob acks it, alice gets the `delivered` receipt live and acks that.

The AWS calls are counted on the real handlers (moto, botocore hooks, as in
bench.calls); request units come from the sizes of the items those calls write and read,
computed with DynamoDB's item-size rules. Beside it, in the same run, the design of
AWS's simple-websockets-chat-app sample, which finds a recipient's connections by
scanning a connections table, at 1,000 and 1,000,000 connected users.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.calls import CallCounter, instrument
from bench.calls import message_life as count_life
from messenger.dal.queue import QueuedMessage, QueuedReceipt, queue_item
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.names import ReceiptStatus
from tests.support.harness import harness

PRICES_DATE = "2024-11 list prices, us-east-1 (DynamoDB on-demand after the Nov 2024 cut)"
API_GATEWAY_PER_MILLION_MESSAGES = 1.00  # per 32 KB message unit, first billion
API_GATEWAY_PER_MILLION_CONNECTION_MINUTES = 0.25
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND_ARM64 = 0.0000133334
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
SNS_PER_MILLION_MOBILE_PUSH = 0.50

# Assumptions that calls and item sizes cannot give: say them, and keep them modest.
LAMBDA_MEMORY_GB = 0.5
LAMBDA_BILLED_MS_PER_INVOCATION = 25
SCAN_PAGE_MS = 60  # Lambda time to fetch and filter one 1 MB Scan page
CONNECTION_ITEM_BYTES = 100  # connectionId + userId in the sample's connections table


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (S, N, L, M)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return math.ceil(len(str(inner).lstrip("-").replace(".", "")) / 2) + 1
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    raise ValueError(kind)


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


@dataclass
class Bill:
    api_messages: float = 0
    lambda_invocations: int = 0
    wru: float = 0
    rru: float = 0
    sns: int = 0
    extra_lambda_ms: float = 0

    def dollars_per_million(self) -> dict[str, float]:
        gb_s = (
            (self.lambda_invocations * LAMBDA_BILLED_MS_PER_INVOCATION + self.extra_lambda_ms)
            / 1000
            * LAMBDA_MEMORY_GB
        )
        return {
            "API Gateway messages": self.api_messages * API_GATEWAY_PER_MILLION_MESSAGES,
            "Lambda requests": self.lambda_invocations * LAMBDA_PER_MILLION_REQUESTS,
            "Lambda GB-s (arm64)": gb_s * LAMBDA_PER_GB_SECOND_ARM64 * 1_000_000,
            "DynamoDB writes": self.wru * DYNAMODB_PER_MILLION_WRU,
            "DynamoDB reads": self.rru * DYNAMODB_PER_MILLION_RRU,
            "SNS push": self.sns * SNS_PER_MILLION_MOBILE_PUSH,
        }


def life_bill(calls: Counter[str], body_bytes: int) -> Bill:
    """Request units of one message's life, from its counted calls and its item sizes."""
    body = b64url_encode(b"x" * body_bytes)
    message = queue_item(
        QueuedMessage(
            "bob",
            "alice",
            "01J9Z3ABCDEFGHJKMNPQRSTVWX",
            body,
            b64url_encode(b"n" * 24),
            1_764_190_000_123,
            1_764_190_000_456,
            "01764190000456000#0a1b2c3d",
            1_766_782_000,
        )
    )
    receipt = queue_item(
        QueuedReceipt(
            "alice",
            ReceiptStatus.DELIVERED,
            ("01J9Z3ABCDEFGHJKMNPQRSTVWX",),
            "bob",
            1_764_190_000_789,
            "01764190000789000#0a1b2c3d",
            1_766_782_000,
        )
    )
    message_wu, receipt_wu = write_units(item_size(message)), write_units(item_size(receipt))
    profile_read = read_units(400)  # a profile with keys and a couple of connections
    expected = {
        "dynamodb.GetItem": 2,
        "dynamodb.PutItem": 1,
        "dynamodb.UpdateItem": 1,
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.BatchWriteItem": 1,
        "apigatewaymanagementapi.PostToConnection": 2,
    }
    assert dict(calls) == expected, f"the life of a message changed: {dict(calls)}"
    bill = Bill()
    bill.rru = 2 * profile_read  # recipient's profile on send, sender's on ack
    bill.wru += 1  # rate-limit bucket
    bill.wru += 2 * message_wu  # message put: table + byOrder index (ALL projection)
    bill.wru += 2 * message_wu + message_wu  # transactional delete + index entry
    bill.wru += 2 * receipt_wu + receipt_wu  # transactional receipt put + index entry
    bill.wru += 2 * receipt_wu  # receipt delete on the sender's ack: table + index
    frame_units = math.ceil((len(body) + 300) / 32_768)
    # In: sendMessage, ack, receipt ack. Out: ack (route response), message, receipt.
    bill.api_messages = 5 + frame_units
    bill.lambda_invocations = 3
    return bill


def scan_design_bill(base: Bill, connected_users: int) -> Bill:
    """The same life, plus the sample's Scan of the connections table on every send."""
    table_bytes = connected_users * CONNECTION_ITEM_BYTES
    pages = max(1, math.ceil(table_bytes / (1024 * 1024)))
    bill = Bill(**base.__dict__)
    bill.rru += read_units(table_bytes)  # a Scan reads (and bills) every item it passes
    bill.extra_lambda_ms += pages * SCAN_PAGE_MS
    return bill


def print_bills(columns: dict[str, Bill]) -> None:
    priced = {name: bill.dollars_per_million() for name, bill in columns.items()}
    lines = list(next(iter(priced.values())))
    width = max(len(line) for line in lines)
    print(f"{'$ per million messages':<{width}}" + "".join(f"{n:>24}" for n in columns))
    for line in lines:
        print(f"{line:<{width}}" + "".join(f"{priced[n][line]:>24.2f}" for n in columns))
    print(f"{'TOTAL':<{width}}" + "".join(f"{sum(priced[n].values()):>24.2f}" for n in columns))


def main(argv: list[str] | None = None) -> int:
    with harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as h:
        counter = CallCounter()
        instrument(h, counter)
        calls = count_life(h, counter)
    print(
        "Counted calls, one message's life (send, live delivery, ack, delivered receipt, "
        "receipt ack):"
    )
    print("  " + ", ".join(f"{op}x{n}" for op, n in sorted(calls.items())))
    print(f"Prices: {PRICES_DATE}.")
    print(
        f"Assumed: Lambda {LAMBDA_MEMORY_GB} GB, {LAMBDA_BILLED_MS_PER_INVOCATION} ms billed "
        f"per invocation; the scan design spends {SCAN_PAGE_MS} ms per 1 MB Scan page on "
        f"{CONNECTION_ITEM_BYTES}-byte connection items.\n"
    )
    for label, body_bytes in (
        ("a short text (120-byte ciphertext)", 120),
        ("a maximum-size body (24,000 bytes)", 24_000),
    ):
        ours = life_bill(calls, body_bytes)
        print(f"-- {label}")
        print_bills(
            {
                "this design": ours,
                "scan, 1,000 users": scan_design_bill(ours, 1_000),
                "scan, 1,000,000 users": scan_design_bill(ours, 1_000_000),
            }
        )
        print()
    print(
        "Connection minutes are per connected device, not per message: "
        f"${API_GATEWAY_PER_MILLION_CONNECTION_MINUTES} per million minutes "
        f"(a phone connected 24 h a day: ${1440 * 30 * 0.25 / 1e6:.4f} a month)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
