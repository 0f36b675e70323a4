"""Switching a cell to its standby and back (messenger_directory.failover.switch), on moto:
the Users table's replica in each region and the directory's bucket.

Global tables' replication is not emulated here (the local stack's business): each
region's table is the replica as that region holds it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from messenger.contract import TABLES, USERS_TABLE, create_table_request
from messenger.logic.cell_view import promotion_delay_ms
from messenger_directory.config import ProbeEnv, forget_settings
from messenger_directory.failover import (
    CellSides,
    DirectoryBucket,
    FailoverEnv,
    Side,
    arm,
    failover,
    switch,
)
from messenger_directory.probe import probe
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import DIRECTORY_KEY, merge, write_entry
from messenger_directory.user_probe import PROBE_NAMESPACE
from messenger_directory.wiring import failover_clients, forget_clients
from messenger_local.lambdas import LambdaContext
from messenger_protocol.cells import Directory, ShardMap

pytestmark = pytest.mark.integration

OWNER = "123456789012"  # moto's account
# The deployment's directory key: here one the test holds (moto has no Ed25519 KMS keys).
DIRECTORY_KEY_SEED = bytes(range(32))
SIGNER = SeedDirectorySigner(SigningKey(DIRECTORY_KEY_SEED))
# A cell's first epoch, as its deploy writes it.
FIRST_EPOCH = "us-east-1#0"
BUCKET = "messenger-prod-directory-123456789012-us-east-1"
SHARD_MAP = ShardMap.even(["c0", "c1"])
PRIMARY = Side(
    "us-east-1",
    "messenger-prod-c0-users",
    "wss://aaaa111111.execute-api.us-east-1.amazonaws.com/prod",
)
STANDBY = Side(
    "us-west-2",
    "messenger-prod-c0-users",
    "wss://bbbb222222.execute-api.us-west-2.amazonaws.com/prod",
)
C1_URL = "wss://cccc333333.execute-api.eu-west-1.amazonaws.com/prod"
C0 = CellSides(
    "c0",
    {"primary": PRIMARY, "standby": STANDBY},
    DirectoryBucket(BUCKET, "us-east-1", OWNER),
)


# The Failover function's environment in the standby region (infra/failover_automation.py).
STANDBY_ENVIRONMENT = {
    "AWS_REGION": "us-west-2",
    FailoverEnv.CELL_ID: "c0",
    FailoverEnv.USERS_TABLE: STANDBY.users_table,
    FailoverEnv.URL: STANDBY.url,
    FailoverEnv.DIRECTORY_BUCKET: BUCKET,
    FailoverEnv.DIRECTORY_REGION: "us-east-1",
    FailoverEnv.DIRECTORY_OWNER: OWNER,
}
# The alarm's state change, as EventBridge delivers it.
ALARM = {"detail-type": "CloudWatch Alarm State Change", "detail": {"state": {"value": "ALARM"}}}


@dataclass
class World:
    s3: Any
    dynamodb: dict[str, Any]  # region -> client

    def switch(self, to: str, apigateway_for: Any = None) -> Any:
        """The operator's switch; with `apigateway_for`, the sides' stages set too."""
        return switch(
            C0,
            to,
            dynamodb_for=self.dynamodb.__getitem__,
            s3=self.s3,
            apigateway_for=apigateway_for,
            now_ms=1,
        )

    def publish(self) -> dict[str, Any]:
        """What the directory function does after an entry was written; the document."""
        merge(self.s3, BUCKET, SHARD_MAP, SIGNER)
        document: dict[str, Any] = json.loads(
            self.s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()
        )
        return document

    def epoch_item(self, region: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            self.dynamodb[region]
            .get_item(
                TableName=PRIMARY.users_table, Key={"pk": {"S": "CELL"}, "sk": {"S": "EPOCH"}}
            )
            .get("Item")
        )
        return item


@pytest.fixture
def world() -> Iterator[World]:
    from moto import mock_aws

    # The functions parse their environment and make their clients once per container:
    # each test is a container of its own, under its own moto.
    forget_settings()
    forget_clients()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = {}
        for side in (PRIMARY, STANDBY):
            client = boto3.client("dynamodb", region_name=side.region)
            for spec in TABLES:
                if spec is USERS_TABLE:
                    client.create_table(**create_table_request(spec, side.users_table))
            dynamodb[side.region] = client
        # Given both cells deployed: their entries written and published, version 1
        write_entry(s3, BUCKET, "c0", PRIMARY.url, owner=OWNER, epoch=FIRST_EPOCH)
        write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
        yield World(s3, dynamodb)
    forget_settings()
    forget_clients()


def test_switching_to_the_standby_bumps_its_generation_and_moves_the_directory(world):
    assert world.publish()["version"] == 1
    # When the operator switches c0 to its standby
    switched = world.switch("standby")
    # Then the standby's replica holds generation 1, and its epoch names it
    assert switched.summary() == {
        "cell": "c0",
        "to": "standby",
        "url": STANDBY.url,
        "generation": 1,
        "epoch": "us-west-2#1",
        "bumped": True,
        # It takes writes once the primary's functions must have read the switch
        "activeFrom": 1 + promotion_delay_ms(),
        "fenced": True,
    }
    item = world.epoch_item("us-west-2")
    assert item is not None
    assert (item["generation"], item["active"]) == ({"N": "1"}, {"S": "standby"})
    # And the primary's replica, reachable here, was told the same (it may be gone: then
    # replication tells it)
    fence = world.epoch_item("us-east-1")
    assert fence is not None
    assert (fence["generation"], fence["active"]) == ({"N": "1"}, {"S": "standby"})
    # And the directory, once merged, sends c0's users to the standby: version + 1
    document = world.publish()
    assert document["version"] == 2
    # c0 at its standby, naming the standby's new epoch (signed with it); c1 unchanged
    assert document["cells"] == {
        "c0": {"url": STANDBY.url, "epoch": switched.epoch},
        "c1": {"url": C1_URL, "epoch": FIRST_EPOCH},
    }
    assert Directory.parse(document).verifies(SIGNER.public_key())


def test_the_same_switch_run_twice_changes_nothing_more(world):
    world.publish()
    first = world.switch("standby")
    world.publish()
    # When it runs again (an operator and the automated path, or a retry)
    again = world.switch("standby")
    # Then it reports the same state and bumps nothing, and the directory keeps its version
    assert (again.generation, again.epoch, again.url) == (1, "us-west-2#1", STANDBY.url)
    assert (first.bumped, again.bumped) == (True, False)
    assert world.publish()["version"] == 2
    assert world.epoch_item("us-west-2")["generation"] == {"N": "1"}


def test_failing_back_names_a_new_epoch_and_moves_the_directory_back(world):
    world.publish()
    world.switch("standby")
    world.publish()
    # Given the standby's generation replicated back to the primary once it returned
    world.dynamodb["us-east-1"].put_item(
        TableName=PRIMARY.users_table, Item=world.epoch_item("us-west-2")
    )
    # When the operator fails back
    back = world.switch("primary")
    # Then the primary names generation 2: an epoch no one has seen
    assert (back.generation, back.epoch, back.bumped) == (2, "us-east-1#2", True)
    document = world.publish()
    assert (document["version"], document["cells"]["c0"]["url"]) == (3, PRIMARY.url)


def test_a_side_the_cell_does_not_have_is_refused_before_anything_is_written(world):
    alone = CellSides("c0", {"primary": PRIMARY}, C0.directory)
    with pytest.raises(ValueError, match="cell c0 has no 'standby' side"):
        switch(alone, "standby", dynamodb_for=world.dynamodb.__getitem__, s3=world.s3)
    with pytest.raises(ValueError, match="switch to primary or standby, not 'sideways'"):
        switch(C0, "sideways", dynamodb_for=world.dynamodb.__getitem__, s3=world.s3)
    assert world.epoch_item("us-west-2") is None
    assert world.publish()["cells"]["c0"]["url"] == PRIMARY.url


def test_the_standbys_failover_function_runs_the_same_switch(world, monkeypatch):
    world.publish()
    # Given the Failover function's environment in the standby region
    for name, value in STANDBY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    # When the alarm's state change reaches it through EventBridge
    context = LambdaContext.for_invocation("Switch", region="us-west-2", account_id=OWNER)
    answer = failover(ALARM, context)
    # Then the cell is switched to the standby, as the command would
    assert (answer["epoch"], answer["url"]) == ("us-west-2#1", STANDBY.url)
    assert world.publish()["cells"]["c0"]["url"] == STANDBY.url


def test_a_failover_function_missing_a_variable_fails_naming_it_and_switches_nothing(
    world, monkeypatch
):
    world.publish()
    # Given the Failover function's environment without its own URL
    for name, value in STANDBY_ENVIRONMENT.items():
        if name != FailoverEnv.URL:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv(FailoverEnv.URL, raising=False)
    context = LambdaContext.for_invocation("Switch", region="us-west-2", account_id=OWNER)
    # When the alarm reaches it, then it fails naming the variable, and nothing is switched
    with pytest.raises(ValueError, match=f"{FailoverEnv.URL.value} is not set"):
        failover(ALARM, context)
    assert world.epoch_item("us-west-2") is None
    assert world.publish()["cells"]["c0"]["url"] == PRIMARY.url


def test_the_probe_publishes_a_failed_probe_of_the_cells_url_as_its_metric(world, monkeypatch):
    # Given the cell's entry naming a port nobody listens on, and the probe user's secret
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_url = f"ws://127.0.0.1:{unused.getsockname()[1]}/c0"
    write_entry(world.s3, BUCKET, "c0", dead_url, owner=OWNER, epoch=FIRST_EPOCH)
    secrets = boto3.client("secretsmanager", region_name="us-west-2")
    secret = secrets.create_secret(Name="probe-key", SecretString="s3cret")["ARN"]
    environment = {
        "AWS_REGION": "us-west-2",
        ProbeEnv.CELL_ID: "c0",
        ProbeEnv.VANTAGE: "standby",
        ProbeEnv.USER_ID: "probe-c0-standby",
        ProbeEnv.SECRET: secret,
        ProbeEnv.METRIC_REGION: "us-west-2",
        ProbeEnv.DIRECTORY_BUCKET: BUCKET,
        ProbeEnv.DIRECTORY_REGION: "us-east-1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    context = LambdaContext.for_invocation("Probe", region="us-west-2", account_id=OWNER)
    # When the probe runs
    summary = probe({}, context)
    # Then the cell's failure is its measurement, not an error
    assert (summary["ok"], summary["url"], summary["vantage"]) == (False, dead_url, "standby")
    # And ProbeSuccess 0, by cell and vantage, is in the metric region's CloudWatch
    cloudwatch = boto3.client("cloudwatch", region_name="us-west-2")
    metrics = cloudwatch.list_metrics(Namespace=PROBE_NAMESPACE)["Metrics"]
    assert [
        (m["MetricName"], sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in metrics
    ] == [("ProbeSuccess", [("Cell", "c0"), ("Vantage", "standby")])]
    stats = cloudwatch.get_metric_statistics(
        Namespace=PROBE_NAMESPACE,
        MetricName="ProbeSuccess",
        Dimensions=[{"Name": "Cell", "Value": "c0"}, {"Name": "Vantage", "Value": "standby"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [point["Maximum"] for point in stats] == [0.0]


def test_the_probe_fails_its_invocation_when_the_cell_has_no_entry(world, monkeypatch):
    # Given a cell the directory knows nothing of
    for name, value in {
        "AWS_REGION": "us-west-2",
        ProbeEnv.CELL_ID: "c9",
        ProbeEnv.VANTAGE: "standby",
        ProbeEnv.USER_ID: "probe-c9-standby",
        ProbeEnv.SECRET: "unused",
        ProbeEnv.METRIC_REGION: "us-west-2",
        ProbeEnv.DIRECTORY_BUCKET: BUCKET,
        ProbeEnv.DIRECTORY_REGION: "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    context = LambdaContext.for_invocation("Probe", region="us-west-2", account_id=OWNER)
    # Then the probe cannot run: its invocation fails (the Probe's Errors alarm), and it
    # publishes nothing (no data is not a failed cell)
    with pytest.raises(LookupError, match="c9"):
        probe({}, context)
    cloudwatch = boto3.client("cloudwatch", region_name="us-west-2")
    assert cloudwatch.list_metrics(Namespace=PROBE_NAMESPACE)["Metrics"] == []


def test_a_deploy_of_the_primary_never_writes_its_url_over_a_switch_to_the_standby(world):
    world.publish()
    world.switch("standby")
    assert world.publish()["cells"]["c0"]["url"] == STANDBY.url
    # When the primary's stack is deployed again (its entry custom resource)
    written = write_entry(world.s3, BUCKET, "c0", PRIMARY.url, owner=OWNER, epoch=FIRST_EPOCH)
    # Then the entry keeps the standby's URL, and the directory does not move back
    assert written is False
    document = world.publish()
    assert (document["version"], document["cells"]["c0"]["url"]) == (2, STANDBY.url)
    # But once the operator fails back, deploys write again
    world.dynamodb["us-east-1"].put_item(
        TableName=PRIMARY.users_table, Item=world.epoch_item("us-west-2")
    )
    world.switch("primary")
    assert write_entry(world.s3, BUCKET, "c0", PRIMARY.url, owner=OWNER, epoch=FIRST_EPOCH) is True
    assert world.publish()["cells"]["c0"]["url"] == PRIMARY.url


def test_the_automated_switch_fires_once_until_an_operator_re_arms_it(world, monkeypatch):
    world.publish()
    for name, value in STANDBY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    context = LambdaContext.for_invocation("Switch", region="us-west-2", account_id=OWNER)
    # Given it fired once, and the operator failed back
    assert failover(ALARM, context)["epoch"] == "us-west-2#1"
    world.dynamodb["us-east-1"].put_item(
        TableName=PRIMARY.users_table, Item=world.epoch_item("us-west-2")
    )
    world.switch("primary")
    world.publish()
    # When the alarm fires again (a flap)
    answer = failover(ALARM, context)
    # Then nothing is switched: the primary stays active, the directory keeps its URL
    assert answer == {"cell": "c0", "switched": False, "reason": "disarmed"}
    assert world.epoch_item("us-west-2")["active"] == {"S": "primary"}
    assert world.publish()["cells"]["c0"]["url"] == PRIMARY.url
    # And once re-armed, it fires again
    arm(C0, dynamodb_for=world.dynamodb.__getitem__)
    assert failover(ALARM, context)["epoch"] == "us-west-2#3"
    assert world.publish()["cells"]["c0"]["url"] == STANDBY.url


def test_the_automated_switch_tells_the_alarm_topic(world, monkeypatch):
    world.publish()
    sns = boto3.client("sns", region_name="us-west-2")
    topic = sns.create_topic(Name="messenger-alarms")["TopicArn"]
    for name, value in {**STANDBY_ENVIRONMENT, FailoverEnv.ALARM_TOPIC: topic}.items():
        monkeypatch.setenv(name, value)
    published: list[dict[str, Any]] = []
    failover_clients().sns().meta.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: published.append(params)
    )
    context = LambdaContext.for_invocation("Switch", region="us-west-2", account_id=OWNER)
    failover(ALARM, context)
    failover(ALARM, context)
    assert [p["TopicArn"] for p in published] == [topic, topic]
    assert "switched to its standby" in published[0]["Message"]
    assert "disarmed" in published[1]["Message"]


def stubbed_apigateway(expected: list[tuple[str, str, str]]) -> tuple[Any, Any]:
    """An API Gateway v2 client per region whose UpdateStage calls must be, in order,
    (region, api id, fenced) setting only the `fenced` variable (moto has no UpdateStage)."""
    from botocore.stub import Stubber

    clients = {
        region: boto3.client("apigatewayv2", region_name=region)
        for region in (PRIMARY.region, STANDBY.region)
    }
    stubbers = {region: Stubber(client) for region, client in clients.items()}
    for region, api_id, fenced in expected:
        stubbers[region].add_response(
            "update_stage",
            {},
            {"ApiId": api_id, "StageName": "prod", "StageVariables": {"fenced": fenced}},
        )
    for stubber in stubbers.values():
        stubber.activate()
    return clients.__getitem__, stubbers


def test_a_switch_fences_the_old_sides_stage_and_opens_the_targets(world):
    world.publish()
    # Given the operator's switch, with API Gateway clients of both regions
    apigateway_for, stubbers = stubbed_apigateway(
        [("us-east-1", "aaaa111111", "1"), ("us-west-2", "bbbb222222", "0")]
    )
    # When it switches c0 to its standby
    world.switch("standby", apigateway_for)
    # Then the primary's stage is fenced (its pings answered MOVED) and the standby's open
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert world.publish()["cells"]["c0"]["url"] == STANDBY.url


def test_a_stage_that_cannot_be_set_does_not_stop_the_switch(world):
    world.publish()
    # Given API Gateway refusing every UpdateStage (a lost region, a missing grant)
    apigateway_for, stubbers = stubbed_apigateway([])
    for stubber in stubbers.values():
        for _ in range(2):
            stubber.add_client_error("update_stage", "AccessDeniedException", http_status_code=403)
    # When the operator switches c0 to its standby
    switched = world.switch("standby", apigateway_for)
    # Then the switch stands all the same: the generation, the fence, the directory
    assert (switched.generation, switched.fenced) == (1, True)
    assert world.publish()["cells"]["c0"]["url"] == STANDBY.url
