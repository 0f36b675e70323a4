"""`python -m infra.cells move` and `move-status` (infra/move_command.py) against moto: the
old home's Mover (its handler, served in-process for Lambda's Invoke), Step Functions
(moto's: it records executions, it does not run them) and the Users table's move records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from infra.move_command import main
from messenger_local.aws import ACCOUNT_ID, REGION
from tests.functions.test_mover import (
    AwsMove,
    alice_shard,
    aws_move_on,
    invocation_answer,
    one_step_context,
)
from tests.functions.test_shard_moves import ALICE, BOB, queue_for, queue_ids

pytestmark = pytest.mark.integration

MOVER = "Messenger-dev-c0-Mover"
# Three cells, c0 where moto's tables are; the others are only named.
CONTEXT = [
    "-c",
    f"cells=c0:{ACCOUNT_ID}/{REGION},c1:{ACCOUNT_ID}/eu-west-1,c2:{ACCOUNT_ID}/eu-central-1",
]


def operator_session(aws_move: AwsMove) -> boto3.Session:
    """The operator's session; Lambda's Invoke of the Mover runs its handler here."""
    session = boto3.Session(region_name=REGION)

    def invoke(params: dict[str, Any], **kwargs: Any) -> Any:
        assert params["url_path"].startswith(f"/2015-03-31/functions/{MOVER}/")
        answer = aws_move.invoke(json.loads(params["body"]))
        return AWSResponse(params["url"], 200, HTTPHeaders(), None), invocation_answer(answer)

    session.events.register("before-call.lambda.Invoke", invoke)
    return session


def printed(capsys: pytest.CaptureFixture[str]) -> Any:
    """What the command printed (its one line, after the Mover's log lines)."""
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsMove, boto3.Session, Any]]:
    with aws_move_on(monkeypatch) as aws_move:
        yield deployed_on(aws_move)


def deployed_on(aws_move: AwsMove) -> tuple[AwsMove, boto3.Session, Any]:
    session = operator_session(aws_move)
    machine = session.client("stepfunctions").create_state_machine(
        name="Mover",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/mover-machine",
    )["stateMachineArn"]
    users = aws_move.cells["c0"].table_names["Users"]

    def outputs_of(stack: str, region: str) -> dict[str, str]:
        assert (stack, region) == ("Messenger-dev-c0", REGION)
        return {
            "MoverFunctionName": MOVER,
            "MoverStateMachineArn": machine,
            "UsersTableName": users,
        }

    return aws_move, session, outputs_of


def test_given_a_move_command_then_the_move_is_recorded_and_its_execution_started(deployed, capsys):
    aws_move, session, outputs_of = deployed
    mine = alice_shard()
    # When the operator starts a move of alice's shard from c0 to c2
    code = main(
        ["move", "--from", "c0", "--to", "c2", "--shards", f"{mine}-{mine}", *CONTEXT],
        session,
        outputs_of,
    )
    # Then it prints the move, at its first step, and the execution named after it
    assert code == 0
    started = printed(capsys)
    assert (started["from"], started["to"], started["lo"], started["hi"]) == (
        "c0",
        "c2",
        mine,
        mine,
    )
    assert started["step"] == "fence"
    sfn = session.client("stepfunctions")
    (execution,) = sfn.list_executions(
        stateMachineArn=outputs_of("Messenger-dev-c0", REGION)["MoverStateMachineArn"]
    )["executions"]
    assert execution["name"] == started["move"]
    assert execution["executionArn"] == started["execution"]
    assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "move": started["move"]
    }
    # And move-status shows it with its execution
    assert main(["move-status", "--from", "c0", *CONTEXT], session, outputs_of) == 0
    (status,) = printed(capsys)
    assert status["move"] == started["move"] and status["status"] == "running"
    assert [run["name"] for run in status["executions"]] == [started["move"]]
    # When the state machine has run it (its task, invoked to the end), and one resumes
    state = {"done": False}
    while not state["done"]:
        state = aws_move.invoke({"move": started["move"]})
    assert main(["move-status", "--from", "c0", *CONTEXT], session, outputs_of) == 0
    (status,) = printed(capsys)
    assert (status["status"], status["step"], status["version"]) == ("done", "finished", 2)


def test_given_a_refused_move_then_the_command_says_why_and_nothing_is_written(deployed, capsys):
    aws_move, session, outputs_of = deployed
    before = aws_move.cells.dump()
    # A range c0 does not own
    code = main(
        ["move", "--from", "c0", "--to", "c2", "--shards", "65535-65535", *CONTEXT],
        session,
        outputs_of,
    )
    assert code == 2 and "does not own" in capsys.readouterr().err
    # A move to resume that does not exist; a cell that is not the deployment's
    assert main(["move", "--from", "c0", "--resume", "nope", *CONTEXT], session, outputs_of) == 2
    assert "no move nope" in capsys.readouterr().err
    assert main(["move-status", "--from", "c9", *CONTEXT], session, outputs_of) == 2
    assert "no cell 'c9'" in capsys.readouterr().err
    # Nothing written, no execution started
    assert aws_move.cells.dump() == before
    machine = outputs_of("Messenger-dev-c0", REGION)["MoverStateMachineArn"]
    assert (
        session.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"] == []
    )


def test_given_a_stopped_move_then_resume_starts_another_execution_of_it(deployed, capsys):
    _, session, outputs_of = deployed
    mine = alice_shard()
    main(
        ["move", "--from", "c0", "--to", "c2", "--shards", f"{mine}-{mine}", *CONTEXT],
        session,
        outputs_of,
    )
    move_id = printed(capsys)["move"]
    assert main(["move", "--from", "c0", "--resume", move_id, *CONTEXT], session, outputs_of) == 0
    resumed = printed(capsys)
    assert resumed["move"] == move_id and resumed["execution"].split(":")[-1].startswith(
        f"{move_id}-resumed-"
    )


def test_given_a_move_before_its_switch_then_abort_stops_it_and_runs_its_rollback(deployed, capsys):
    aws_move, session, outputs_of = deployed
    c0, c2 = aws_move.cells["c0"], aws_move.cells["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, 30)
    before = queue_ids(c0, ALICE)
    mine = alice_shard()
    main(
        ["move", "--from", "c0", "--to", "c2", "--shards", f"{mine}-{mine}", *CONTEXT],
        session,
        outputs_of,
    )
    started = printed(capsys)
    move_id = started["move"]
    # Given the move's execution part-way, its queue copied to c2
    state: dict[str, Any] = {"step": "fence"}
    while state["step"] != "copy-limits":
        state = aws_move.invoke({"move": move_id}, one_step_context())
    assert len(c2.queue_of(ALICE)) == 30
    # When the operator aborts it
    assert main(["move", "--from", "c0", "--abort", move_id, *CONTEXT], session, outputs_of) == 0
    aborted = printed(capsys)
    # Then its record turned to the rollback, its execution was stopped, another started
    assert (aborted["status"], aborted["step"]) == ("aborting", "abort-wait")
    assert aborted["stopped"] == [move_id]
    sfn = session.client("stepfunctions")
    assert sfn.describe_execution(executionArn=started["execution"])["status"] == "ABORTED"
    rollback = sfn.describe_execution(executionArn=aborted["execution"])
    assert rollback["name"].startswith(f"{move_id}-aborted-")
    assert json.loads(rollback["input"]) == {"move": move_id}
    # And once that execution has run it, c0 holds everything, c2 nothing of alice's
    state = {"done": False}
    while not state["done"]:
        state = aws_move.invoke({"move": move_id})
    assert queue_ids(c0, ALICE) == before and c2.queue_of(ALICE) == []
    assert main(["move-status", "--from", "c0", *CONTEXT], session, outputs_of) == 0
    (status,) = printed(capsys)
    assert (status["status"], status["step"]) == ("aborted", "finished")
    # And aborting it again starts nothing
    assert main(["move", "--from", "c0", "--abort", move_id, *CONTEXT], session, outputs_of) == 0
    assert printed(capsys)["execution"] is None


def test_given_a_published_move_then_abort_is_refused_with_the_way_back(deployed, capsys):
    aws_move, session, outputs_of = deployed
    mine = alice_shard()
    main(
        ["move", "--from", "c0", "--to", "c2", "--shards", f"{mine}-{mine}", *CONTEXT],
        session,
        outputs_of,
    )
    move_id = printed(capsys)["move"]
    state = {"done": False}
    while not state["done"]:
        state = aws_move.invoke({"move": move_id})
    before = aws_move.cells.dump()
    machine = outputs_of("Messenger-dev-c0", REGION)["MoverStateMachineArn"]
    sfn = session.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    # When the operator aborts it: exit 2, why, and what to do instead
    assert main(["move", "--from", "c0", "--abort", move_id, *CONTEXT], session, outputs_of) == 2
    error = capsys.readouterr().err
    assert "refused (409)" in error and f"shards {mine}-{mine} from c2 back to c0" in error
    # And nothing changed, no execution started or stopped
    assert aws_move.cells.dump() == before
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == executions
