"""sync: a user's queue, one bounded page per request, in store order.

A round starts with a `sync` without `after` (the oldest unacknowledged item) and goes on
with the cursor each `syncDone` hands out while `more` is true. A page never repeats an
item of an earlier page of its round, whatever the timing of the acks: the cursor is a
position in store order, not an offset. With `batch` the items travel packed into
`items` frames of at most 32 KB; without it, one frame each, as in v1.
"""

from __future__ import annotations

from messenger.contract import SYNC_PAGE_ITEMS, SYNC_PAGE_POSTS, Metric
from messenger.dal.queue import Page, Queue, queue_owner
from messenger.logic.clock import Clock
from messenger.logic.epoch import CellEpoch
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.sync_cursor import SyncCursors
from messenger.observability import count
from messenger_protocol.frames import ItemsFrame, ServerFrame, Sync, SyncDoneFrame
from messenger_protocol.limits import PRIMARY_DEVICE_ID


class CatchUp:
    def __init__(
        self, queue: Queue, cursors: SyncCursors, live: LiveDelivery, clock: Clock, epoch: CellEpoch
    ) -> None:
        self._queue = queue
        self._cursors = cursors
        self._live = live
        self._clock = clock
        self._epoch = epoch

    def sync(
        self,
        owner: str,
        connection_id: str,
        request: Sync,
        directory_version: int = 0,
        device_id: str = PRIMARY_DEVICE_ID,
    ) -> int:
        """Post one page of the queue of the owner's device (docs/protocol.md §8: each
        device has its own) to the connection, then syncDone (with the cell's epoch, and
        `directory_version` as its `dv`); returns how many items went out. A refused
        cursor raises BadRequest before any post."""
        queue = queue_owner(owner, device_id)
        after = self._cursors.position(queue, request.after) if request.after else None
        # Without batch every item is a post: read no more items than a page can post.
        limit = SYNC_PAGE_ITEMS if request.batch else SYNC_PAGE_POSTS
        page = self._queue.page(queue, after, self._clock.now_s(), limit)
        frames, page = _within_post_budget(page, batch=request.batch)
        for frame in frames:
            if not self._live.post(owner, connection_id, frame):
                return 0  # the caller is gone; everything stays queued
        sent = len(page.items)
        count(Metric.SYNC_PAGES)
        count(Metric.ITEMS_SYNCED, sent)
        cursor = self._cursors.issue(queue, page.end) if page.more and page.end else None
        done = SyncDoneFrame(
            count=sent,
            more=cursor is not None,
            epoch=self._epoch.current(),
            cursor=cursor,
            dv=directory_version,
        )
        self._live.post(owner, connection_id, done)
        return sent


def _within_post_budget(page: Page, *, batch: bool) -> tuple[list[ServerFrame], Page]:
    """The frames of a page, and the page cut short if they would be more posts than
    SYNC_PAGE_POSTS (one frame per item without batch; maximum-size items with it)."""
    singles = [item.frame() for item in page.items]
    frames: list[ServerFrame] = ItemsFrame.pack(singles) if batch else list(singles)
    if len(frames) <= SYNC_PAGE_POSTS:
        return frames, page
    frames = frames[:SYNC_PAGE_POSTS]
    carried = sum(len(f.items) if isinstance(f, ItemsFrame) else 1 for f in frames)
    items = page.items[:carried]
    return frames, Page(items, True, items[-1].seq)
