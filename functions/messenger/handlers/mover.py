"""The Mover (no route): a shard move's runner on AWS, in the old home's stack
(infra/mover.py; the runbook is docs/scale.md "Shard moves").

Two requests, both answered with the move's record (`MoveRecord.to_wire`):

    {"start": {"to": "c2", "lo": 0, "hi": 16383}}
        a new move out of this cell (the operator's command invokes it, then starts the
        state machine with its id); {"refused": reason, "status": 400 | 409} if it cannot
        start (not this cell's range, an overlapping move), and nothing is written
    {"abort": "<id>"}
        turns a move that has not switched out yet into its rollback (its runner then runs
        it: the operator's command starts an execution); {"refused": reason, "status": 409}
        past that point (finish it, then move the range back), 400 if there is no such move
    {"move": "<id>"}
        the state machine's task: runs the move's steps (each, or one page of it) until
        the move is finished or the invocation is near its end, and answers with
        `"done": true | false`; the state machine invokes it again until done. Its state
        is the move's record, written after every page and step: a crash, a timeout or a
        stopped execution loses nothing, and an execution started again resumes.

A step that fails raises (its error written in the record first): the state machine
retries it with backoff, then fails the execution, which the cell's alarm reports.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.config import mover_settings
from messenger.logic.shard_move import FINISHED, MoveBusy, MoveRefused, MoveSwitched
from messenger.move_wiring import shard_move
from messenger.observability import logger, metrics

# Stop starting steps this long before the invocation's end: the longest a step takes
# (a settle wait of a few seconds, or a page of 200 items copied with throttled retries).
STOP_BEFORE_END_MS = 120_000
START, ABORT, MOVE = "start", "abort", "move"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    mover = shard_move()
    cell_id = mover_settings().cell_id
    if isinstance(event.get(START), dict):
        start = event[START]
        target, lo, hi = start.get("to"), start.get("lo"), start.get("hi")
        try:
            if not isinstance(target, str) or type(lo) is not int or type(hi) is not int:
                raise MoveRefused('start is {"to": CELL, "lo": SHARD, "hi": SHARD}')
            record = mover.start(cell_id, target, lo, hi)
        except MoveRefused as refused:
            return {"refused": str(refused), "status": 400}
        except MoveBusy as busy:
            return {"refused": str(busy), "status": 409}
        logger.info("move started", extra=record.to_wire())
        return {**record.to_wire(), "done": False}
    if ABORT in event:
        return _abort(event[ABORT], cell_id)
    move_id = event.get(MOVE)
    if not isinstance(move_id, str) or not move_id:
        return {
            "refused": 'the event is {"move": ID}, {"abort": ID} or {"start": {...}}',
            "status": 400,
        }
    logger.append_keys(move=move_id)
    try:
        record = mover.run_while(
            cell_id, move_id, lambda: context.get_remaining_time_in_millis() > STOP_BEFORE_END_MS
        )
    except MoveRefused as refused:  # no such move here: nothing to run, nor to retry
        return {"refused": str(refused), "status": 400}
    return {**record.to_wire(), "done": record.step == FINISHED}


def _abort(move_id: Any, cell_id: str) -> dict[str, Any]:
    if not isinstance(move_id, str) or not move_id:
        return {"refused": 'abort is {"abort": MOVE_ID}', "status": 400}
    try:
        record = shard_move().abort(cell_id, move_id)
    except MoveRefused as refused:
        return {"refused": str(refused), "status": 400}
    except MoveSwitched as switched:
        return {"refused": str(switched), "status": 409}
    logger.info("move aborted", extra=record.to_wire())
    return {**record.to_wire(), "done": record.step == FINISHED}
