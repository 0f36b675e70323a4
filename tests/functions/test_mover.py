"""The Mover (messenger.handlers.mover), a shard move's runner on AWS, on moto: three cells'
tables, the directory in a moto bucket, published by the directory function's own code
(messenger_directory.handlers.publish) which the Mover invokes through boto3's Lambda
client; invoked as the state machine invokes it (infra/mover.py), one invocation at a
time, until it answers done."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.response import StreamingBody

from messenger.config import mover_settings_from
from messenger.contract import Env, MoverEnv
from messenger.dal.moves import MoveConflict, MoveRecord
from messenger.dal.shard_states import RangeState, ShardStates
from messenger.handlers import mover as mover_handler
from messenger.logic.shard_move import ABORTABLE, STEPS
from messenger.move_wiring import mover_of
from messenger_directory import handlers as directory_handlers
from messenger_directory.config import forget_settings
from messenger_directory.store import merge, read_directory
from messenger_local.aws import ACCOUNT_ID, REGION
from messenger_local.cells_harness import MESH_BUCKET
from messenger_local.lambdas import LambdaContext
from messenger_protocol.cells import MOVE_PUBLISH, MOVE_REQUEST, ShardMap
from tests.support.cells import CellsUnderTest
from tests.support.moves import (
    ALICE,
    BOB,
    BUCKET,
    CAROL,
    CELLS,
    SIGNER,
    alice_shard,
    items_of,
    queue_for,
    queue_ids,
    settling,
    three_cells,
)

pytestmark = pytest.mark.integration

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/directory"
# infra/mover.py's: Lambda's longest.
MOVER_TIMEOUT_SECONDS = 900
DIRECTORY_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:messenger-dev-directory"


class DirectoryFunction:
    """Lambda Invoke of the directory function, served in this process by its handler (on
    moto's S3); `lose_next_publish` makes the next publish time out after it published (the
    answer lost, as Lambda reports a function that timed out)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lose_next_publish = False

    def client(self) -> Any:
        client = boto3.client("lambda", region_name=REGION)
        client.meta.events.register("before-call.lambda.Invoke", self._invoke)
        return client

    def _invoke(self, params: dict[str, Any], model: Any, **kwargs: Any) -> Any:
        payload = json.loads(params["body"])
        self.requests.append(payload)
        headers = {}
        try:
            context = LambdaContext.for_invocation(
                "directory", region=REGION, account_id=ACCOUNT_ID
            )
            answer: Any = directory_handlers.publish(payload, context)
            if self.lose_next_publish and payload.get(MOVE_REQUEST) == MOVE_PUBLISH:
                self.lose_next_publish = False
                raise TimeoutError("Task timed out after 60.00 seconds")
        except Exception as error:
            answer = {"errorMessage": str(error), "errorType": type(error).__name__}
            headers["FunctionError"] = "Unhandled"
        parsed = {**invocation_answer(answer), **headers}
        return AWSResponse(params["url"], 200, HTTPHeaders(), None), parsed


def invocation_answer(answer: Any) -> dict[str, Any]:
    """What boto3 parses from Lambda's answer to a synchronous Invoke of a function that
    returned `answer`."""
    body = json.dumps(answer).encode()
    return {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(body), len(body)),
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def one_step_context() -> LambdaContext:
    """A context with time for one step: the Mover stops after it (the next invocation
    goes on), as an invocation near its end does."""
    context = LambdaContext.for_invocation("Mover", region=REGION, account_id=ACCOUNT_ID)
    asked = iter([900_000])
    context.get_remaining_time_in_millis = lambda: next(asked, 0)  # type: ignore[method-assign]
    return context


@dataclass
class AwsMove:
    cells: CellsUnderTest
    directory: DirectoryFunction
    s3: Any

    def invoke(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        answer: dict[str, Any] = mover_handler.handler(
            event,
            context
            or LambdaContext.for_invocation(
                "Mover", region=REGION, account_id=ACCOUNT_ID, timeout_seconds=MOVER_TIMEOUT_SECONDS
            ),
        )
        return answer

    def version(self) -> int:
        directory = read_directory(self.s3, BUCKET)
        assert directory is not None
        return directory.version


@pytest.fixture
def aws_move(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsMove]:
    with aws_move_on(monkeypatch) as deployed:
        yield deployed


@contextmanager
def aws_move_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsMove]:
    """Three cells on moto, the directory published, the Mover of c0 ready to invoke."""
    forget_settings()
    with three_cells() as (cells, s3):
        merge(s3, BUCKET, ShardMap.even(list(CELLS)), SIGNER)
        # The directory function's environment, as the directory stack sets it (the map
        # is the published one).
        monkeypatch.setenv(directory_handlers.DirectoryEnv.BUCKET, BUCKET)
        monkeypatch.setenv(directory_handlers.DirectoryEnv.KEY_ID, KEY_ARN)
        monkeypatch.setattr(directory_handlers, "directory_signer", {KEY_ARN: SIGNER}.__getitem__)
        harnesses = cells.harnesses
        # The Mover's environment, as infra/mover.py sets it in c0's stack: its own tables
        # only; c1's and c2's are found by the naming rule, in their Relays' region.
        own = harnesses["c0"].table_names
        environment = {
            MoverEnv.CELL_ID.value: "c0",
            MoverEnv.CELLS.value: json.dumps(
                {
                    "c0": {
                        "region": REGION,
                        "users": own["Users"],
                        "queue": own["Queue"],
                        "limits": own["Limits"],
                    }
                }
            ),
            MoverEnv.DEPLOYMENT.value: "test",
            Env.MESH_BUCKET.value: MESH_BUCKET,
            Env.MESH_BUCKET_REGION.value: REGION,
            Env.MESH_BUCKET_OWNER.value: ACCOUNT_ID,
            MoverEnv.DIRECTORY_FUNCTION.value: DIRECTORY_FUNCTION,
            MoverEnv.CONNECTIONS_ENDPOINT.value: harnesses["c0"].settings.connections_endpoint
            or "https://c0.example/prod",
        }
        settings = mover_settings_from(environment)
        directory = DirectoryFunction()
        mover = mover_of(
            settings,
            dynamodb_for=lambda region: harnesses["c0"].dynamodb,
            lambda_for=lambda region: directory.client(),
            management_for=harnesses["c0"].services.management_client_factory,
            s3_for=lambda region: s3,
            wait=settling(cells),
        )
        monkeypatch.setattr(mover_handler, "shard_move", lambda: mover)
        monkeypatch.setattr(mover_handler, "mover_settings", lambda: settings)
        yield AwsMove(cells, directory, s3)
    forget_settings()


def test_given_a_start_then_the_move_is_recorded_and_refusals_write_nothing(aws_move: AwsMove):
    c0 = aws_move.cells["c0"]
    mine = alice_shard()
    # A range c0 does not own, a malformed request: refused, nothing written
    before = aws_move.cells.dump()
    foreign = aws_move.invoke({"start": {"to": "c2", "lo": 65535, "hi": 65535}})
    assert foreign["status"] == 400 and "does not own" in foreign["refused"]
    assert aws_move.invoke({"start": {"to": "c2", "lo": "0", "hi": 1}})["status"] == 400
    assert aws_move.invoke({"start": {"to": "c9", "lo": mine, "hi": mine}})["status"] == 400
    assert aws_move.invoke({})["status"] == 400
    assert aws_move.cells.dump() == before
    # When a move starts
    started = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})
    # Then it is recorded at its first step
    assert (started["step"], started["status"], started["done"]) == ("fence", "running", False)
    assert started["from"] == "c0" and started["to"] == "c2"
    # And an overlapping one is refused 409
    busy = aws_move.invoke({"start": {"to": "c1", "lo": mine, "hi": mine}})
    assert busy["status"] == 409
    assert [
        item["sk"]["S"] for item in c0.dump()[c0.table_names["Users"]] if item["pk"]["S"] == "MOVE"
    ] == [started["move"]]


def test_given_invocations_of_one_step_each_then_the_state_machine_loop_finishes_the_move(
    aws_move: AwsMove,
):
    # Given alice in c0, offline, with 250 items queued (two pages of the copy)
    c0, c2 = aws_move.cells["c0"], aws_move.cells["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 250)
    before_queue = queue_ids(c0, ALICE)
    carol_before = items_of(c0, CAROL)
    version = aws_move.version()
    mine = alice_shard()
    started = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})
    # When the state machine invokes the Mover until it answers done
    state = {"move": started["move"]}
    invocations = 0
    while True:
        state = aws_move.invoke({"move": state["move"]}, one_step_context())
        invocations += 1
        assert "refused" not in state
        if state["done"]:
            break
        assert invocations < 100
    # Then every step ran, each in its own invocation (pages too)
    assert invocations >= len(STEPS)
    assert state["status"] == "done" and state["step"] == "finished"
    # And the directory function published the moved map, version + 1, c2 owning her shard
    assert state["version"] == version + 1 == aws_move.version()
    directory = read_directory(aws_move.s3, BUCKET)
    assert directory is not None and directory.shard_map.cell_of_shard(mine) == "c2"
    # And her queue is at c2, same keys and order; nothing of hers left in c0
    assert queue_ids(c2, ALICE) == before_queue
    assert c0.queue_of(ALICE) == [] and items_of(c0, ALICE) == []
    assert (state["users"], state["items"]) == (1, 250)
    assert items_of(c0, CAROL) == carol_before
    # And an invocation after the end changes nothing
    after = aws_move.cells.dump()
    assert aws_move.invoke({"move": state["move"]})["done"] is True
    assert aws_move.cells.dump() == after


def test_given_a_move_then_each_step_reports_its_duration_under_its_name(
    aws_move: AwsMove, capsys: pytest.CaptureFixture[str]
):
    mine = alice_shard()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    capsys.readouterr()
    # When the Mover runs the whole move
    assert aws_move.invoke({"move": move_id})["done"]
    # Then each step wrote a MoveStepDuration, in milliseconds, with its Step dimension
    records = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "MoveStepDuration" in line
    ]
    steps = []
    for record in records:
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Messenger"
        assert directive["Dimensions"] == [["service", "Step"]]
        assert directive["Metrics"] == [{"Name": "MoveStepDuration", "Unit": "Milliseconds"}]
        (milliseconds,) = record["MoveStepDuration"]
        assert record["service"] == "messenger" and milliseconds >= 0
        steps.append(record["Step"])
    assert steps == list(STEPS)


def test_given_a_publish_whose_answer_is_lost_then_the_retry_publishes_nothing_twice(
    aws_move: AwsMove,
):
    c0, c2 = aws_move.cells["c0"], aws_move.cells["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 5)
    mine = alice_shard()
    version = aws_move.version()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    state = {"step": "fence"}
    while state["step"] != "publish":
        state = aws_move.invoke({"move": move_id}, one_step_context())
    # Given the directory function timing out after it published the moved map
    aws_move.directory.lose_next_publish = True
    # When the Mover runs the publish step: it fails (the state machine retries)
    with pytest.raises(RuntimeError, match="directory function failed"):
        aws_move.invoke({"move": move_id})
    # Then the record says where and why
    [record] = [item for item in c0.dump()[c0.table_names["Users"]] if item["pk"]["S"] == "MOVE"]
    assert record["step"]["S"] == "publish" and "timed out" in record["error"]["S"]
    assert aws_move.version() == version + 1
    # And the retry resumes there and finishes, with no version more: the map published
    # again is the one already published
    state = aws_move.invoke({"move": move_id})
    assert state["done"] and state["version"] == version + 1 == aws_move.version()
    assert state["error"] is None
    assert len(c2.queue_of(ALICE)) == 5 and c0.queue_of(ALICE) == []
    publishes = [r for r in aws_move.directory.requests if r.get(MOVE_REQUEST) == MOVE_PUBLISH]
    assert len(publishes) == 2


def alice_everywhere(cell: Any) -> list[dict[str, Any]]:
    """Every item of alice's in a cell's Users, Queue and Limits tables."""
    return [
        item
        for items in cell.dump(with_limits=True).values()
        for item in items
        if ALICE.user_id in item["pk"]["S"]
    ]


def ranges_of_move(cell: Any, move_id: str) -> list[Any]:
    states = ShardStates(cell.dynamodb, cell.table_names["Users"]).read()
    return [entry for entry in states.ranges if entry.move == move_id]


def run_to(aws_move: AwsMove, move_id: str, step: str, pages: int = 0) -> dict[str, Any]:
    """Invoke the Mover one step (or page) at a time until the move is at `step`, then
    `pages` pages further into it."""
    state = {"step": "fence"}
    while state["step"] != step:
        state = aws_move.invoke({"move": move_id}, one_step_context())
    for _ in range(pages):
        state = aws_move.invoke({"move": move_id}, one_step_context())
        assert state["step"] == step
    return state


def run_to_end(aws_move: AwsMove, move_id: str) -> dict[str, Any]:
    state = {"done": False}
    while not state["done"]:
        state = aws_move.invoke({"move": move_id}, one_step_context())
    return state


@pytest.mark.parametrize(
    ("step", "pages"),
    [(step, 0) for step in ABORTABLE] + [("copy-queue", 1)],
    ids=lambda value: str(value),
)
def test_given_an_abort_before_the_switch_then_the_old_home_serves_the_range_with_everything(
    aws_move: AwsMove, step: str, pages: int
):
    # Given alice in c0, offline, with 250 items queued (two pages of the copy)
    c0, c1, c2 = aws_move.cells["c0"], aws_move.cells["c1"], aws_move.cells["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 250)
    before_queue, before_items = queue_ids(c0, ALICE), items_of(c0, ALICE)
    version = aws_move.version()
    mine = alice_shard()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    # And the move run up to this step (part of its copy at c2, maybe switched in)
    run_to(aws_move, move_id, step, pages)
    # When the operator aborts it
    aborted = aws_move.invoke({"abort": move_id})
    assert (aborted["status"], aborted["step"], aborted["done"]) == (
        "aborting",
        "abort-wait",
        False,
    )
    # And the state machine runs the rollback to its end
    state = run_to_end(aws_move, move_id)
    # Then the move is aborted; nothing was published
    assert (state["status"], state["step"]) == ("aborted", "finished")
    assert state["version"] is None and aws_move.version() == version
    # And c0 holds all of alice's, as before; c2 nothing of hers, nor of the move
    assert queue_ids(c0, ALICE) == before_queue and items_of(c0, ALICE) == before_items
    assert alice_everywhere(c2) == []
    assert ranges_of_move(c0, move_id) == [] and ranges_of_move(c2, move_id) == []
    # And c0 serves her range again: bob's message to her is stored there
    b = c1.connect(BOB)
    assert c1.send(b, c1.message(b, ALICE, "after", "msg-after-abort"))["type"] == "ack"
    assert len(c0.queue_of(ALICE)) == 251 and alice_everywhere(c2) == []
    # And aborting again changes nothing; the range is free for another move
    after = aws_move.cells.dump()
    assert aws_move.invoke({"abort": move_id})["status"] == "aborted"
    assert aws_move.cells.dump() == after
    again = aws_move.invoke({"start": {"to": "c1", "lo": mine, "hi": mine}})
    assert again["step"] == "fence"


@pytest.mark.parametrize("step", ["switch-peers", "publish", "clean-queue"])
def test_given_a_move_past_its_switch_then_an_abort_is_refused_and_changes_nothing(
    aws_move: AwsMove, step: str
):
    c0 = aws_move.cells["c0"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 5)
    mine = alice_shard()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    run_to(aws_move, move_id, step)
    before = aws_move.cells.dump()
    # When the operator aborts it: refused 409, with the way back
    refused = aws_move.invoke({"abort": move_id})
    assert refused["status"] == 409
    assert "past its switch" in refused["refused"] and "back to c0" in refused["refused"]
    # And nothing changed; the move finishes
    assert aws_move.cells.dump() == before
    assert run_to_end(aws_move, move_id)["status"] == "done"
    assert aws_move.invoke({"abort": move_id})["status"] == 409
    # An unknown move, a malformed abort: 400
    assert aws_move.invoke({"abort": "nope"})["status"] == 400
    assert aws_move.invoke({"abort": 7})["status"] == 400


def test_given_an_abort_while_a_runner_is_at_switch_in_then_it_switches_nothing(
    aws_move: AwsMove,
):
    c0, c2 = aws_move.cells["c0"], aws_move.cells["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 5)
    before_queue = queue_ids(c0, ALICE)
    mine = alice_shard()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    mover = mover_handler.shard_move()

    def abort_at_switch_in(record: MoveRecord) -> None:
        if record.step == "switch-in":
            assert aws_move.invoke({"abort": move_id})["status"] == "aborting"

    # Given a runner that has read the move at switch-in when the abort comes
    mover.after_step = abort_at_switch_in
    # When it goes on: its claim of the step fails, and c2 never switches in
    with pytest.raises(MoveConflict):
        aws_move.invoke({"move": move_id})
    assert [entry.state for entry in ranges_of_move(c0, move_id)] == [RangeState.FENCED]
    assert ranges_of_move(c2, move_id) == []
    # And the rollback leaves everything at c0
    mover.after_step = lambda record: None
    assert run_to_end(aws_move, move_id)["status"] == "aborted"
    assert queue_ids(c0, ALICE) == before_queue and alice_everywhere(c2) == []


def test_given_a_switch_in_claimed_then_an_abort_is_refused(
    aws_move: AwsMove, monkeypatch: pytest.MonkeyPatch
):
    c0 = aws_move.cells["c0"]
    c0.disconnect(c0.connect(ALICE))
    mine = alice_shard()
    move_id = aws_move.invoke({"start": {"to": "c2", "lo": mine, "hi": mine}})["move"]
    run_to(aws_move, move_id, "switch-in")
    # Given the runner crashing at switch-in after its claim, before its switch
    put_range = ShardStates.put_range

    def crash_on_in(states: ShardStates, entry: Any) -> bool:
        if entry.state is RangeState.IN:
            raise ConnectionError("the Mover's container died")
        return put_range(states, entry)

    monkeypatch.setattr(ShardStates, "put_range", crash_on_in)
    with pytest.raises(ConnectionError):
        aws_move.invoke({"move": move_id})
    # Then an abort is refused (the switch may have happened): resume and move back
    assert aws_move.invoke({"abort": move_id})["status"] == 409
    monkeypatch.setattr(ShardStates, "put_range", put_range)
    assert run_to_end(aws_move, move_id)["status"] == "done"
