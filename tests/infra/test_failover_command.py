"""`python -m infra.failover switch` and `arm`: the operator's switch and re-arm, with the
stacks' outputs and the tables and directory bucket on moto (CloudFormation, DynamoDB
and S3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from infra.failover import main
from messenger.contract import USERS_TABLE, create_table_request
from messenger.dal.cell_state import CellState
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import DIRECTORY_KEY, merge, write_entry
from messenger_protocol.cells import ShardMap

pytestmark = pytest.mark.infra

ACCOUNT = "123456789012"  # moto's
BUCKET = f"messenger-prod-directory-{ACCOUNT}-us-east-1"
CELLS = ["-c", f"cells=c0:{ACCOUNT}/us-east-1,c1:{ACCOUNT}/eu-west-1"]
STANDBY = ["-c", f"standby:c0={ACCOUNT}/us-west-2"]
PRIMARY_URL = "wss://aaaa111111.execute-api.us-east-1.amazonaws.com/prod"
STANDBY_URL = "wss://bbbb222222.execute-api.us-west-2.amazonaws.com/prod"
C1_URL = "wss://cccc333333.execute-api.eu-west-1.amazonaws.com/prod"
# The directory key (in KMS on AWS; moto has no Ed25519 keys).
SIGNER = SeedDirectorySigner(SigningKey(bytes(32)))


def stack_with_outputs(region: str, name: str, outputs: dict[str, str]) -> None:
    """A stack whose outputs are those of the messenger's (a topic: moto needs a resource)."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=region).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        for region, stack, url in (
            ("us-east-1", "Messenger-prod-c0", PRIMARY_URL),
            ("us-west-2", "Messenger-prod-c0-standby", STANDBY_URL),
        ):
            boto3.client("dynamodb", region_name=region).create_table(
                **create_table_request(USERS_TABLE, "messenger-prod-c0-users")
            )
            stack_with_outputs(
                region, stack, {"WebSocketUrl": url, "UsersTableName": "messenger-prod-c0-users"}
            )
        stack_with_outputs("us-east-1", "Messenger-prod-Directory", {"DirectoryBucketName": BUCKET})
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        write_entry(s3, BUCKET, "c0", PRIMARY_URL, owner=ACCOUNT, epoch="us-east-1#0")
        write_entry(s3, BUCKET, "c1", C1_URL, owner=ACCOUNT, epoch="eu-west-1#0")
        merge(s3, BUCKET, ShardMap.even(["c0", "c1"]), SIGNER)
        yield s3


def published(s3: Any) -> dict[str, Any]:
    merge(s3, BUCKET, ShardMap.even(["c0", "c1"]), SIGNER)  # what the directory function does
    document: dict[str, Any] = json.loads(
        s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()
    )
    return document


def test_the_command_switches_a_cell_to_its_standby_and_back(deployed, capsys):
    # When the operator switches c0 to its standby
    assert main(["switch", "c0", "--to", "standby", "--env", "prod", *CELLS, *STANDBY]) == 0
    # Then it says where the cell is now and under which epoch
    said = json.loads(capsys.readouterr().out)
    assert (said["url"], said["epoch"], said["bumped"]) == (STANDBY_URL, "us-west-2#1", True)
    assert published(deployed)["cells"]["c0"] == {"url": STANDBY_URL, "epoch": "us-west-2#1"}
    assert published(deployed)["version"] == 2
    # And failing back names the primary's region at its own next generation
    assert main(["switch", "c0", "--to", "primary", "--env", "prod", *CELLS, *STANDBY]) == 0
    said = json.loads(capsys.readouterr().out)
    assert (said["url"], said["epoch"]) == (PRIMARY_URL, "us-east-1#1")
    assert published(deployed) | {"version": 3} == published(deployed)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["switch", "c1", "--to", "standby", "--env", "prod", *CELLS, *STANDBY], "no standby"),
        (["switch", "c9", "--to", "standby", "--env", "prod", *CELLS, *STANDBY], "no cell 'c9'"),
        (["switch", "c0", "--to", "standby", "--env", "prod"], "no cells in the context"),
    ],
)
def test_a_switch_the_deployment_cannot_make_is_refused_and_changes_nothing(
    deployed, capsys, arguments, says
):
    assert main(arguments) == 2
    assert says in capsys.readouterr().err
    assert published(deployed)["version"] == 1


def standby_state() -> CellState:
    client = boto3.client("dynamodb", region_name="us-west-2")
    return CellState(client, "messenger-prod-c0-users")


def test_the_command_re_arms_the_automated_switch_of_a_cell(deployed, capsys):
    # Given the automated switch to c0's standby fired once, and so disarmed itself
    assert standby_state().disarm(now_ms=1_000) is True
    assert not standby_state().armed()
    # When the operator re-arms it, with the same settings as a switch
    assert main(["arm", "c0", "--env", "prod", *CELLS, *STANDBY]) == 0
    # Then it says so, and the standby's replica holds the arm again
    said = json.loads(capsys.readouterr().out)
    assert said == {"cell": "c0", "armed": True, "region": "us-west-2"}
    assert standby_state().armed()
    # And nothing else moved: the directory still names the primary
    assert published(deployed)["version"] == 1
    assert published(deployed)["cells"]["c0"]["url"] == PRIMARY_URL


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["arm", "c1", "--env", "prod", *CELLS, *STANDBY], "no standby"),
        (["arm", "c9", "--env", "prod", *CELLS, *STANDBY], "no cell 'c9'"),
        (["arm", "c0", "--env", "prod"], "no cells in the context"),
    ],
)
def test_an_arm_the_deployment_cannot_make_is_refused(deployed, capsys, arguments, says):
    assert standby_state().disarm(now_ms=1_000) is True
    assert main(arguments) == 2
    assert says in capsys.readouterr().err
    assert not standby_state().armed()
