"""What the server holds for the user (docs/protocol.md §2, getSettings and setBlocked):
read back by every device, so each can show and edit it; and each device's push token
(registerPush, per device: §8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from messenger_client.replies import Replies
from messenger_protocol.encoding import USER_ID_RULE, is_user_id
from messenger_protocol.errors import BadRequest
from messenger_protocol.frames import (
    BlockedFrame,
    GetSettings,
    PushRegisteredFrame,
    RegisterPush,
    SetBlocked,
    SettingsFrame,
)
from messenger_protocol.names import PresenceVisibility, PushPlatform


@dataclass(frozen=True)
class Settings:
    """The user's settings as the server holds them."""

    visibility: PresenceVisibility
    # Who may see the user's presence under PresenceVisibility.CONTACTS.
    contacts: tuple[str, ...]
    blocked: tuple[str, ...]


async def get_settings(replies: Replies) -> Settings:
    answer = await replies.request(GetSettings(), SettingsFrame, lambda _: True)
    return Settings(answer.visibility, tuple(answer.contacts), tuple(answer.blocked))


async def set_blocked(
    replies: Replies,
    *,
    add: Sequence[str] | None,
    remove: Sequence[str] | None,
    user_ids: Sequence[str] | None,
) -> int:
    """Send a setBlocked; the number of users now blocked. ValueError, before anything is
    sent, for what the server would refuse (a bad id, more than 1,000, `user_ids` with
    `add` or `remove`), read by the protocol's own rules."""
    lists = {"userIds": user_ids, "add": add, "remove": remove}
    for ids in lists.values():
        for user_id in ids or ():
            if not is_user_id(user_id):
                raise ValueError(f"{user_id!r} is not {USER_ID_RULE}")
    document = {"action": SetBlocked.ACTION.value} | {
        name: list(ids) for name, ids in lists.items() if ids is not None
    }
    try:
        frame = SetBlocked.read(document)
    except BadRequest as problem:
        raise ValueError(str(problem)) from None
    answer = await replies.request(frame, BlockedFrame, lambda _: True)
    return answer.count


async def register_push(replies: Replies, platform: PushPlatform, token: str) -> None:
    """Register this device's push token (APNS/FCM): a content-free push reaches it when
    something is queued for it and it has no open connection. ValueError, before anything
    is sent, for a token the platform would not issue."""
    try:
        frame = RegisterPush.read(
            {"action": RegisterPush.ACTION.value, "platform": platform.value, "token": token}
        )
    except BadRequest as problem:
        raise ValueError(str(problem)) from None
    await replies.request(frame, PushRegisteredFrame, lambda answer: answer.platform == platform)
