"""Queue item ids (dal/queue.py): built and read in one place, each the other's inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.dal.queue import (
    is_receipt_item_id,
    message_item_id,
    new_seq,
    parse_message_item_id,
    receipt_item_id,
)
from messenger_protocol.limits import MESSAGE_ID_PATTERN, USER_ID_PATTERN

pytestmark = pytest.mark.unit


@given(
    st.from_regex(USER_ID_PATTERN, fullmatch=True),
    st.from_regex(MESSAGE_ID_PATTERN, fullmatch=True),
)
def test_a_message_item_id_reads_back_as_its_sender_and_message_id(
    sender: str, message_id: str
) -> None:
    item_id = message_item_id(sender, message_id)
    assert parse_message_item_id(item_id) == (sender, message_id)
    assert not is_receipt_item_id(item_id)


@pytest.mark.parametrize(
    "item_id", ["", "m#", "m##msg-00000001", "m#alice#", "m#alice#b#c", "x#alice#b", "zzz", "r#1"]
)
def test_anything_else_is_no_message_item_id(item_id: str) -> None:
    assert parse_message_item_id(item_id) is None


def test_a_receipt_item_id_is_told_from_a_message_s() -> None:
    item_id = receipt_item_id(new_seq(1_700_000_000_000_000))
    assert is_receipt_item_id(item_id)
    assert parse_message_item_id(item_id) is None
