"""A peer cell with a standby (docs/protocol.md §7): its two sides' Relay records in the
directory's bucket name both of its Relays, and the caller tries the standby's when the
primary's does not answer.

Settings parsing is `unit`; the Relay client reads the records from moto's S3 and its calls
go through a real boto3 Lambda client (its Invoke answered by a before-call hook), as the
harness's are: `integration`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.response import StreamingBody
from moto import mock_aws
from nacl.signing import SigningKey

from messenger.config import MeshBucket, settings_from
from messenger.contract import Env
from messenger.dal.relay_directory import RelayDirectory
from messenger.logic.clock import FixedClock
from messenger.transport.relay import RelayClient, RelayFailed
from messenger_directory.store import write_relay_record
from messenger_protocol.errors import UnknownRecipient
from messenger_protocol.mesh import RelayRecord, relay_public_key
from messenger_protocol.names import RelayOperation
from tests.support.harness import function_name_in

PRIMARY = "arn:aws:lambda:us-east-1:111111111111:function:messenger-prod-c1-relay:live"
STANDBY = "arn:aws:lambda:us-west-2:111111111111:function:messenger-prod-c1-standby-relay:live"
C2 = "arn:aws:lambda:eu-west-1:222222222222:function:messenger-prod-c2-relay:live"
TABLES = {
    Env.USERS_TABLE.value: "users",
    Env.QUEUE_TABLE.value: "queue",
    Env.LIMITS_TABLE.value: "limits",
}


BUCKET, OWNER = "messenger-prod-directory", "111111111111"
MESH = {
    Env.MESH_BUCKET.value: BUCKET,
    Env.MESH_BUCKET_REGION.value: "us-east-1",
    Env.MESH_BUCKET_OWNER.value: OWNER,
}


def cell_environment(mesh: dict[str, str]) -> dict[str, str]:
    return (
        TABLES
        | mesh
        | {
            Env.CELL_ID.value: "c0",
            # The shard map is the signed directory's, believed by this key's signature.
            Env.DIRECTORY_PUBLIC_KEY.value: relay_public_key(SigningKey(bytes(32))),
        }
    )


@pytest.fixture(autouse=True)
def directory() -> Iterator[Any]:
    """moto's S3, with the directory's bucket holding c1's two sides and c2's primary."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for cell, side, relay in (
            ("c1", "primary", PRIMARY),
            ("c1", "standby", STANDBY),
            ("c2", "primary", C2),
        ):
            key = relay_public_key(SigningKey.generate())
            write_relay_record(s3, BUCKET, RelayRecord(cell, side, relay, key), owner=OWNER)
        yield s3


class Relays:
    """Serves Lambda Invoke for a few Relays: each answers what it was given, or times out."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers  # relay ARN -> its answer, or an exception to raise
        self.invoked: list[tuple[str, str]] = []  # (relay, invocation type)

    def client(self) -> Any:
        client = boto3.client(
            "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client.meta.events.register("before-call.lambda.Invoke", self._invoke)
        return client

    def _invoke(self, params: dict[str, Any], **kwargs: Any) -> Any:
        relay = function_name_in(params)
        invocation_type = params["headers"].get("X-Amz-Invocation-Type", "RequestResponse")
        self.invoked.append((relay, invocation_type))
        answer = self.answers[relay]
        if isinstance(answer, Exception):
            raise answer
        body = json.dumps(answer).encode()
        status = 202 if invocation_type == "Event" else 200
        parsed = {
            "StatusCode": status,
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse(params["url"], status, HTTPHeaders(), None), parsed


def client_of(relays: Relays) -> RelayClient:
    cell = settings_from(cell_environment(MESH)).cell
    clock = FixedClock(1_000_000)
    directory = RelayDirectory(
        lambda: boto3.client("s3", region_name=cell.mesh.region),
        cell.mesh.name,
        cell.mesh.owner,
        clock,
    )
    key = SigningKey.generate()
    return RelayClient(relays.client, cell.cell_id, directory, lambda: key, clock)


@pytest.mark.unit
def test_a_cell_with_peers_names_the_directory_s_bucket_and_no_peer() -> None:
    cell = settings_from(cell_environment(MESH)).cell
    assert cell.mesh == MeshBucket(BUCKET, "us-east-1", OWNER)
    assert not any("c1" in value or "c2" in value for value in MESH.values())


@pytest.mark.unit
@pytest.mark.parametrize("missing", sorted(set(MESH) - {Env.MESH_BUCKET.value}))
def test_a_cell_with_peers_and_no_directory_bucket_fails_loudly(missing: str) -> None:
    mesh = {name: value for name, value in MESH.items() if name != missing}
    with pytest.raises(ValueError, match="needs MESH_BUCKET, MESH_BUCKET_REGION"):
        settings_from(cell_environment(mesh))


@pytest.mark.integration
def test_the_peers_relays_are_read_from_their_records_primary_first() -> None:
    client = client_of(Relays({}))
    assert client.relays_in_order("c1") == [PRIMARY, STANDBY]
    assert client.relays_in_order("c2") == [C2]


@pytest.mark.integration
def test_a_peer_that_published_no_record_fails_the_call_without_invoking() -> None:
    relays = Relays({})
    with pytest.raises(RelayFailed, match="cell c3 has published no Relay"):
        client_of(relays).call("c3", RelayOperation.KEYS, {})
    assert relays.invoked == []


@pytest.mark.integration
def test_when_the_primary_answers_the_standby_is_never_asked() -> None:
    relays = Relays({PRIMARY: {"ok": {"serverTs": 1}}, STANDBY: {"ok": {"serverTs": 2}}})
    assert client_of(relays).call("c1", RelayOperation.STORE_MESSAGE, {}) == {"serverTs": 1}
    assert relays.invoked == [(PRIMARY, "RequestResponse")]


@pytest.mark.integration
def test_when_the_primary_does_not_answer_the_standby_does() -> None:
    # Given c1's primary region gone, its standby serving
    relays = Relays({PRIMARY: TimeoutError("no answer"), STANDBY: {"ok": {"serverTs": 2}}})
    client = client_of(relays)
    # Then a call reaches the standby after the primary failed
    assert client.call("c1", RelayOperation.STORE_MESSAGE, {}) == {"serverTs": 2}
    # And the next call goes to the standby first: it answered last
    client.notify("c1", RelayOperation.PRESENCE_CHANGED, {})
    assert relays.invoked == [
        (PRIMARY, "RequestResponse"),
        (STANDBY, "RequestResponse"),
        (STANDBY, "Event"),
    ]


@pytest.mark.integration
def test_a_refusal_is_an_answer_and_is_not_asked_again_of_the_standby() -> None:
    refusal = {"error": {"code": "UNKNOWN_RECIPIENT", "message": "no such user"}}
    relays = Relays({PRIMARY: refusal, STANDBY: {"ok": {}}})
    with pytest.raises(UnknownRecipient):
        client_of(relays).call("c1", RelayOperation.STORE_MESSAGE, {})
    assert relays.invoked == [(PRIMARY, "RequestResponse")]


@pytest.mark.integration
def test_when_neither_side_answers_the_call_fails_and_a_peer_without_standby_once() -> None:
    relays = Relays({PRIMARY: TimeoutError("no"), STANDBY: TimeoutError("no"), C2: {"x": 1}})
    client = client_of(relays)
    with pytest.raises(RelayFailed, match="cell c1 did not answer storeMessage"):
        client.call("c1", RelayOperation.STORE_MESSAGE, {})
    relays.answers[C2] = TimeoutError("no")
    with pytest.raises(RelayFailed, match="cell c2"):
        client.call("c2", RelayOperation.KEYS, {})
    assert [relay for relay, _ in relays.invoked] == [PRIMARY, STANDBY, C2]


@pytest.mark.integration
def test_a_fenced_side_s_moved_falls_through_to_the_other_and_the_active_one_is_asked_first() -> (
    None
):
    # Given c1 failed over: its old primary, still reachable, refuses MOVED (fencing)
    moved = {"error": {"code": "MOVED", "message": "this side of the cell is not active"}}
    relays = Relays({PRIMARY: moved, STANDBY: {"ok": {"serverTs": 3}}})
    client = client_of(relays)
    # Then a call reaches the standby, and the next ones ask the standby first
    assert client.call("c1", RelayOperation.STORE_MESSAGE, {}) == {"serverTs": 3}
    assert client.call("c1", RelayOperation.STORE_MESSAGE, {}) == {"serverTs": 3}
    assert [relay for relay, _ in relays.invoked] == [PRIMARY, STANDBY, STANDBY]
    assert client.relays_in_order("c1") == [STANDBY, PRIMARY]


@pytest.mark.integration
def test_a_peer_whose_record_cannot_be_read_fails_the_call_as_a_relay_failure(
    directory: Any,
) -> None:
    # Given c2's record broken in the directory's bucket
    directory.put_object(Bucket=BUCKET, Key="relays/c2/primary.json", Body=b"{not json")
    relays = Relays({})
    # Then a call to c2 is a RelayFailed (answered INTERNAL: the client resends), not a crash
    with pytest.raises(RelayFailed, match="cell c2's Relay records unreadable"):
        client_of(relays).call("c2", RelayOperation.KEYS, {})
    assert relays.invoked == []
