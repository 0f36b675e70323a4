"""A switch while a directory region is lost (issue 21, docs/availability.md "The directory
in two regions"), on moto with real boto3 clients in two directory regions:

- the cells' entries live in the versions table both regions read and write
  (messenger_directory.entries); moto has no multi-Region strong consistency, so the one
  table in the second region's moto stands for the global table, which both regions read
  strongly;
- the second region's directory function runs behind Lambda's Invoke API on loopback
  (the handler itself, in this process, against moto), the first region's answers
  nothing (a closed port), and its S3 is unreachable from the second (the same);
- the switch is `messenger_directory.failover.switch`, as the Failover function runs it;
- each vantage's probe reads the cell's entry in the second bucket (`messenger_directory.probe`).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from nacl.signing import SigningKey

from messenger.contract import USERS_TABLE, create_table_request
from messenger_aws.directory_buckets import BucketsUnreadable
from messenger_directory import handlers
from messenger_directory import probe as probe_module
from messenger_directory.config import ProbeEnv, failover_cell_from, forget_settings
from messenger_directory.entries import TableEntries
from messenger_directory.failover import (
    CellSides,
    DirectoryBucket,
    DirectoryRegion,
    DirectoryUnreachable,
    FailoverEnv,
    Side,
    failover,
    switch,
)
from messenger_directory.replicas import DirectoryBucketAt, Replication, reconcile
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import (
    DIRECTORY_KEY,
    copy_key,
    entry_key,
    merge,
    read_copy,
    read_directory,
    write_entry,
)
from messenger_directory.user_probe import PROBE_NAMESPACE
from messenger_directory.versions import KEY_ATTRIBUTE, VersionLedger, contents_digest
from messenger_directory.wiring import Clients, forget_clients
from messenger_local.lambdas import LambdaContext
from messenger_protocol.cells import Directory, ShardMap

pytestmark = pytest.mark.integration

OWNER = "123456789012"  # moto's account
EAST, WEST = "us-east-1", "us-west-2"  # the directory's first and second region
EAST_BUCKET = f"messenger-prod-directory-{OWNER}-{EAST}"
WEST_BUCKET = f"messenger-prod-directory-{OWNER}-{WEST}"
TABLE = "messenger-prod-directory-versions"
PUBLISHER = "function:messenger-prod-directory-publish"
EAST_PUBLISHER = f"arn:aws:lambda:{EAST}:{OWNER}:{PUBLISHER}"
WEST_PUBLISHER = f"arn:aws:lambda:{WEST}:{OWNER}:{PUBLISHER}"
KEY_ARN = f"arn:aws:kms:{WEST}:{OWNER}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
# The directory key: one the test holds (moto has no Ed25519 KMS keys), as the other
# directory tests do; its replica in each region is the same key material.
SIGNER = SeedDirectorySigner(SigningKey(bytes(range(32))))
SHARD_MAP = ShardMap.even(["c0", "c1"])
C0_URL = "wss://aaaa111111.execute-api.us-east-2.amazonaws.com/prod"
C1_PRIMARY = Side(
    "eu-west-1",
    "messenger-prod-c1-users",
    "wss://cccc333333.execute-api.eu-west-1.amazonaws.com/prod",
)
C1_STANDBY = Side(
    "eu-central-1",
    "messenger-prod-c1-users",
    "wss://dddd444444.execute-api.eu-central-1.amazonaws.com/prod",
)
C1 = CellSides(
    "c1",
    {"primary": C1_PRIMARY, "standby": C1_STANDBY},
    DirectoryBucket(
        EAST_BUCKET,
        EAST,
        OWNER,
        regions=(
            DirectoryRegion(EAST_BUCKET, EAST, EAST_PUBLISHER),
            DirectoryRegion(WEST_BUCKET, WEST, WEST_PUBLISHER),
        ),
    ),
)
# One attempt each: the test's regions answer at once or never.
ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused, as to a lost
    region's endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


LOST_ENDPOINT = f"http://127.0.0.1:{closed_port()}"


class FirstRegionLost(Clients):
    """The second region's directory function's clients: every call into the first
    region fails to connect."""

    def client(self, service: str, region: str | None = None) -> Any:
        if region != EAST:
            return super().client(service, region)
        return boto3.client(  # type: ignore[call-overload]
            service, region_name=EAST, endpoint_url=LOST_ENDPOINT, config=ONE_ATTEMPT
        )


class InvokeApi(BaseHTTPRequestHandler):
    """Lambda's Invoke API for the second region's directory function: the handler runs
    here, against moto, and its result or its error is answered as Lambda does."""

    # The regions of the functions asked, in order.
    asked: list[str] = []

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        InvokeApi.asked.append(EAST if EAST in self.path else WEST)
        if EAST in self.path:
            # The first region's function, asked through AWS_ENDPOINT_URL_LAMBDA: its
            # region answers as a failing service does.
            body = b'{"message": "Service unavailable"}'
            self.send_response(503)
            self.send_header("x-amzn-ErrorType", "ServiceException")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        headers = {}
        try:
            context = LambdaContext.for_invocation("Publish", region=WEST, account_id=OWNER)
            result: Any = handlers.publish(event, context)
        except Exception as error:
            result = {"errorMessage": str(error), "errorType": type(error).__name__}
            headers["X-Amz-Function-Error"] = "Unhandled"
        body = json.dumps(result).encode()
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments: Any) -> None:
        pass


@dataclass
class World:
    east: DirectoryBucketAt
    west: DirectoryBucketAt
    entries: TableEntries
    ledger: VersionLedger
    invoke_url: str

    def lambda_for(self, region: str) -> Any:
        """The Switch's Lambda clients: the first region's is lost."""
        endpoint = LOST_ENDPOINT if region == EAST else self.invoke_url
        return boto3.client("lambda", region_name=region, endpoint_url=endpoint, config=ONE_ATTEMPT)

    def s3_for(self, region: str) -> Any:
        """The Switch's S3 clients: the first region's is lost."""
        return FirstRegionLost().client("s3", region)

    def switch(self, to: str) -> Any:
        return switch(
            C1,
            to,
            dynamodb_for=lambda region: boto3.client("dynamodb", region_name=region),
            s3_for=self.s3_for,
            lambda_for=self.lambda_for,
            now_ms=1,
        )

    def replication(self, own: DirectoryBucketAt) -> Replication:
        other = self.west if own is self.east else self.east
        return Replication(self.ledger, mirrors=[other], entries=self.entries)

    def published(self, target: DirectoryBucketAt) -> Directory:
        directory = read_directory(target.s3, target.bucket)
        assert directory is not None
        return directory


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    from moto import mock_aws

    forget_settings()
    forget_clients()
    # The second region's directory function's environment (infra/directory_regions.py).
    for name, value in {
        handlers.DirectoryEnv.BUCKET: WEST_BUCKET,
        handlers.DirectoryEnv.KEY_ID: KEY_ARN,
        handlers.DirectoryEnv.VERSIONS_TABLE: TABLE,
        handlers.DirectoryEnv.MIRROR_BUCKET: EAST_BUCKET,
        handlers.DirectoryEnv.MIRROR_REGION: EAST,
        "AWS_DEFAULT_REGION": WEST,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handlers, "directory_signer", {KEY_ARN: SIGNER}.__getitem__)
    monkeypatch.setattr(handlers, "directory_clients", FirstRegionLost)
    server = ThreadingHTTPServer(("127.0.0.1", 0), InvokeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with mock_aws():
        targets = {}
        for region, name in ((EAST, EAST_BUCKET), (WEST, WEST_BUCKET)):
            s3 = boto3.client("s3", region_name=region)
            if region == EAST:
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
                )
            targets[region] = DirectoryBucketAt(s3, name)
        dynamodb = boto3.client("dynamodb", region_name=WEST)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for side in (C1_PRIMARY, C1_STANDBY):
            boto3.client("dynamodb", region_name=side.region).create_table(
                **create_table_request(USERS_TABLE, side.users_table)
            )
        world = World(
            targets[EAST],
            targets[WEST],
            TableEntries(dynamodb, TABLE),
            VersionLedger(dynamodb, TABLE),
            f"http://127.0.0.1:{server.server_port}",
        )
        # Given both cells deployed (their entries in the first region's bucket) and the
        # first region's function's merge of them: version 1 in both buckets
        east = world.east
        write_entry(east.s3, EAST_BUCKET, "c0", C0_URL, owner=OWNER, epoch="us-east-2#0")
        write_entry(east.s3, EAST_BUCKET, "c1", C1_PRIMARY.url, owner=OWNER, epoch="eu-west-1#0")
        first = merge(east.s3, EAST_BUCKET, SHARD_MAP, SIGNER, replication=world.replication(east))
        assert first.published and world.published(world.west).version == 1
        yield world
    server.shutdown()
    server.server_close()
    forget_settings()
    forget_clients()


def test_with_the_first_region_lost_a_switch_publishes_the_standby_through_the_second(world):
    # When c1 switches to its standby while the first directory region answers nothing
    switched = world.switch("standby")

    # Then the second region published version 2, the next number, naming the standby
    directory = world.published(world.west)
    assert directory.version == 2
    assert directory.url_of("c1") == C1_STANDBY.url
    assert directory.epoch_of("c1") == switched.epoch == "eu-central-1#1"
    assert directory.url_of("c0") == C0_URL
    # signed by the directory key, and the number reserved for exactly this document
    assert directory.verifies(SIGNER.public_key())
    assert world.ledger.latest() == 2
    assert world.ledger.contents_of(2) == contents_digest(
        directory.urls, directory.epochs, directory.shard_map
    )
    copy = read_copy(world.west.s3, WEST_BUCKET, 2)
    body = world.west.s3.get_object(Bucket=WEST_BUCKET, Key=DIRECTORY_KEY)["Body"].read()
    assert copy == body
    # The entry is in the table both regions read (and in the second region's bucket,
    # where the switch wrote it); the lost region's bucket has nothing new
    stored = world.entries.read("c1")
    assert stored is not None and stored.switched_to == "standby"
    assert stored.entry.url == C1_STANDBY.url
    assert world.published(world.east).version == 1


def test_when_the_first_region_returns_it_catches_up_and_keeps_the_switch(world):
    world.switch("standby")

    # When the first region is back: its reconcile, then its merge (the schedule's run)
    east = world.east
    report = reconcile([east, world.west], world.ledger)
    outcome = merge(east.s3, EAST_BUCKET, None, SIGNER, replication=world.replication(east))

    # Then its bucket holds version 2, byte for byte, and no version was added
    assert f"{EAST_BUCKET}/{copy_key(2)}" in report.repaired
    assert not outcome.published and world.published(east).version == 2
    assert read_copy(east.s3, EAST_BUCKET, 2) == read_copy(world.west.s3, WEST_BUCKET, 2)
    # and its stale bucket entry now names the standby (what the probes read there)...
    entry = json.loads(east.s3.get_object(Bucket=EAST_BUCKET, Key=entry_key("c1"))["Body"].read())
    assert entry == {"url": C1_STANDBY.url, "epoch": "eu-central-1#1"}
    # ...so a redeploy of c1's primary does not undo the switch
    assert not write_entry(
        east.s3, EAST_BUCKET, "c1", C1_PRIMARY.url, owner=OWNER, epoch="eu-west-1#0"
    )
    assert world.published(world.west).url_of("c1") == C1_STANDBY.url


def test_failing_back_through_the_second_region_names_the_primary_with_a_new_epoch(world):
    world.switch("standby")
    switched = world.switch("primary")
    directory = world.published(world.west)
    assert (directory.version, directory.url_of("c1")) == (3, C1_PRIMARY.url)
    assert directory.epoch_of("c1") == switched.epoch == "eu-west-1#2"


def test_with_both_directory_regions_lost_the_switch_fails_and_says_so(world, monkeypatch):
    monkeypatch.setattr(world, "invoke_url", LOST_ENDPOINT)
    with pytest.raises(DirectoryUnreachable, match="no directory region published"):
        world.switch("standby")
    # Nothing published; the switch runs again (its steps are idempotent), and the entry
    # it left in the second region's bucket is the schedule's merge's to publish
    assert world.published(world.west).version == 1
    entry = world.west.s3.get_object(Bucket=WEST_BUCKET, Key=entry_key("c1"))
    assert json.loads(entry["Body"].read())["url"] == C1_STANDBY.url


def test_the_second_regions_reconcile_publishes_an_entry_its_merge_missed(world):
    # Given a switch's entry in the second region's bucket that no merge published (its
    # invoke failed)
    write_entry(
        world.west.s3,
        WEST_BUCKET,
        "c1",
        C1_STANDBY.url,
        owner=OWNER,
        epoch="eu-central-1#1",
        switched_to="standby",
    )

    # When the second region's schedule runs its reconcile, the first region still lost
    context = LambdaContext.for_invocation("Reconcile", region=WEST, account_id=OWNER)
    with pytest.raises(handlers.BucketsNotReconciled, match="'published': True"):
        handlers.reconcile_buckets({"source": "aws.events"}, context)

    # Then it published the entry from the shared table, version 2, and failed the run
    # (its alarm: the first region's bucket could not be compared)
    directory = world.published(world.west)
    assert (directory.version, directory.url_of("c1")) == (2, C1_STANDBY.url)


def test_the_entries_rules_hold_in_the_table(world):
    entries = world.entries
    # A deploy keeps the epoch a switch wrote, and never writes over a failover
    assert entries.write("c1", C1_STANDBY.url, "eu-central-1#3", "standby")
    assert not entries.write("c1", C1_PRIMARY.url, "eu-west-1#0")
    # A late retry of an older switch does not undo the newer one
    assert not entries.write("c1", C1_PRIMARY.url, "eu-west-1#2", "primary")
    stored = entries.read("c1")
    assert stored is not None
    assert (stored.entry.url, stored.entry.epoch) == (C1_STANDBY.url, "eu-central-1#3")
    # After a failback, a deploy of the primary may change its URL and keeps the epoch
    assert entries.write("c1", C1_PRIMARY.url, "eu-west-1#4", "primary")
    new_url = "wss://eeee555555.execute-api.eu-west-1.amazonaws.com/prod"
    assert entries.write("c1", new_url, "eu-west-1#0")
    stored = entries.read("c1")
    assert stored is not None and (stored.entry.url, stored.entry.epoch) == (
        new_url,
        "eu-west-1#4",
    )


def test_a_stale_switch_in_a_bucket_never_undoes_a_later_one(world):
    # Given c1 failed over and back through the second region, while the first region's
    # bucket still holds what an earlier switch to the standby wrote there
    write_entry(
        world.east.s3,
        EAST_BUCKET,
        "c1",
        C1_STANDBY.url,
        owner=OWNER,
        epoch="eu-central-1#1",
        switched_to="standby",
    )
    world.switch("standby")
    world.switch("primary")

    # When the first region returns and merges
    east = world.east
    reconcile([east, world.west], world.ledger)
    merge(east.s3, EAST_BUCKET, None, SIGNER, replication=world.replication(east))

    # Then the later switch stands, and the first bucket's entry says so
    assert world.published(east).url_of("c1") == C1_PRIMARY.url
    entry = json.loads(east.s3.get_object(Bucket=EAST_BUCKET, Key=entry_key("c1"))["Body"].read())
    assert entry == {"url": C1_PRIMARY.url, "epoch": "eu-west-1#2"}


# The standby Switch function's environment with one directory region
# (infra/failover_automation.py); the tests add the second region's.
STANDBY_SWITCH_ENVIRONMENT = {
    "AWS_REGION": C1_STANDBY.region,
    FailoverEnv.CELL_ID: "c1",
    FailoverEnv.USERS_TABLE: C1_STANDBY.users_table,
    FailoverEnv.URL: C1_STANDBY.url,
    FailoverEnv.DIRECTORY_BUCKET: EAST_BUCKET,
    FailoverEnv.DIRECTORY_REGION: EAST,
    FailoverEnv.DIRECTORY_OWNER: OWNER,
}


def test_the_automated_switch_publishes_through_the_second_region(world, monkeypatch):
    # Given the standby's Failover function's environment (infra/failover_automation.py),
    # Lambda's endpoint the test's (the first region's function fails there with 503)
    for name, value in {
        **STANDBY_SWITCH_ENVIRONMENT,
        FailoverEnv.DIRECTORY_PUBLISHERS: f"{EAST_PUBLISHER},{WEST_PUBLISHER}",
        FailoverEnv.DIRECTORY_BUCKETS: f"{EAST_BUCKET},{WEST_BUCKET}",
        "AWS_ENDPOINT_URL_LAMBDA": world.invoke_url,
    }.items():
        monkeypatch.setenv(name, value)
    forget_settings()
    forget_clients()
    alarm = {
        "detail-type": "CloudWatch Alarm State Change",
        "detail": {"state": {"value": "ALARM"}},
    }

    # When the composite alarm fires the Switch
    context = LambdaContext.for_invocation("Switch", region=C1_STANDBY.region, account_id=OWNER)
    InvokeApi.asked.clear()
    summary = failover(alarm, context)

    # Then it asked the first region's function (with its client's retries), then the
    # second's
    *first, last = InvokeApi.asked
    assert first and set(first) == {EAST} and last == WEST

    # and the second region published the standby, version 2
    assert summary["epoch"] == "eu-central-1#1"
    directory = world.published(world.west)
    assert (directory.version, directory.url_of("c1")) == (2, C1_STANDBY.url)
    assert directory.verifies(SIGNER.public_key())


def test_the_switch_functions_publishers_are_lambda_arns():
    environment = STANDBY_SWITCH_ENVIRONMENT
    assert failover_cell_from(environment).directory.regions == ()
    two = {
        **environment,
        FailoverEnv.DIRECTORY_PUBLISHERS: f"{EAST_PUBLISHER}, {WEST_PUBLISHER}",
        FailoverEnv.DIRECTORY_BUCKETS: f"{EAST_BUCKET},{WEST_BUCKET}",
    }
    assert failover_cell_from(two).directory.regions == C1.directory.regions
    bad = {**two, FailoverEnv.DIRECTORY_PUBLISHERS: f"{EAST_PUBLISHER},{EAST_BUCKET}"}
    with pytest.raises(ValueError, match="FAILOVER_DIRECTORY_PUBLISHERS must be Lambda"):
        failover_cell_from(bad)
    one_bucket = {**two, FailoverEnv.DIRECTORY_BUCKETS: EAST_BUCKET}
    with pytest.raises(ValueError, match="one function and one bucket per"):
        failover_cell_from(one_bucket)


def test_with_the_first_region_lost_the_probe_reads_the_cells_entry_in_the_second(
    world, monkeypatch
):
    # Given the first directory region lost for the probe too, and c1's entry in the
    # second region's bucket (a switch's) naming a port nobody listens on
    monkeypatch.setattr(probe_module, "failover_clients", FirstRegionLost)
    dead_url = f"ws://127.0.0.1:{closed_port()}/c1"
    write_entry(world.west.s3, WEST_BUCKET, "c1", dead_url, owner=OWNER, epoch="eu-central-1#1")
    secret = boto3.client("secretsmanager", region_name=WEST).create_secret(
        Name="probe-key", SecretString="s3cret"
    )["ARN"]
    # The standby vantage's Probe environment (infra/user_probe.py), both regions named
    for name, value in {
        "AWS_REGION": WEST,
        ProbeEnv.CELL_ID: "c1",
        ProbeEnv.VANTAGE: "standby",
        ProbeEnv.USER_ID: "probe-c1-standby",
        ProbeEnv.SECRET: secret,
        ProbeEnv.METRIC_REGION: WEST,
        ProbeEnv.DIRECTORY_BUCKET: EAST_BUCKET,
        ProbeEnv.DIRECTORY_REGION: EAST,
        ProbeEnv.DIRECTORY_FALLBACK_BUCKET: WEST_BUCKET,
        ProbeEnv.DIRECTORY_FALLBACK_REGION: WEST,
    }.items():
        monkeypatch.setenv(name, value)
    forget_settings()
    context = LambdaContext.for_invocation("Probe", region=WEST, account_id=OWNER)
    # When the probe runs, then it measured the URL of the second bucket's entry (a
    # failure of the cell, published as its metric, not a failed invocation)
    summary = probe_module.probe({}, context)
    assert (summary["ok"], summary["url"]) == (False, dead_url)
    metrics = boto3.client("cloudwatch", region_name=WEST).list_metrics(Namespace=PROBE_NAMESPACE)[
        "Metrics"
    ]
    assert [m["MetricName"] for m in metrics] == ["ProbeSuccess"]
    # And without the second region named, the same probe cannot read the entry: it fails
    monkeypatch.delenv(ProbeEnv.DIRECTORY_FALLBACK_BUCKET)
    monkeypatch.delenv(ProbeEnv.DIRECTORY_FALLBACK_REGION)
    forget_settings()
    with pytest.raises(BucketsUnreadable, match=EAST_BUCKET):
        probe_module.probe({}, context)
