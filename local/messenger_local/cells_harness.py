"""Several cells on moto in one process: each with its own tables and Services, and the
cell-to-cell call going through a real boto3 `lambda` client.

    with cells_harness() as cells:
        a = cells["c0"].connect(alice)  # alice's home is c0
        ...

Each cell's Relay is reached by Lambda `Invoke`: the peers' `lambda` clients are real
boto3 clients whose Invoke is served here (moto would need Docker to run a function): the
request is serialized by botocore, the named Relay runs in its own cell's Services, and
its answer is parsed by botocore as Lambda's would be. A cell's own presence function
(an Event invoke) is kept by that cell's harness, which runs it as its own would.
The tests drive it (tests/support/cells.py checks every frame against
docs/asyncapi.yaml); `bench scale` counts a cross-cell send's calls with it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.response import StreamingBody

from messenger.config import PRIMARY_SIDE, CellSettings, MeshBucket, Settings
from messenger.contract import RELAY, TABLES, table_name
from messenger.dal.server_keys import ServerKeys
from messenger.logic.clock import FixedClock
from messenger.transport.relay_records import CALL_ID, CALL_ID_BYTES, SIGNATURE, SIGNED_AT, TARGET
from messenger.wiring import serving, use_services
from messenger_directory.mesh import publish_relay_side
from messenger_local.aws import ACCOUNT_ID, REGION
from messenger_local.events import Api
from messenger_local.harness import (
    START_MS,
    FrameCheck,
    Harness,
    PostRecorder,
    create_tables,
    function_name_in,
    load_handler,
    moto_services,
    moto_sqs_on,
    serialize_moto,
    settle_queue_of,
)
from messenger_local.lambdas import LambdaContext
from messenger_protocol.cells import ShardMap
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.mesh import relay_digest

CELLS = ("c0", "c1")
# The directory's bucket, where each cell's Relay record is (docs/scale.md "The mesh").
MESH_BUCKET = "messenger-test-directory"


def relay_arn(cell: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:messenger-test-{cell}-relay"


def presence_function(cell: str) -> str:
    return f"messenger-test-{cell}-presence"


def id_homed_in(cell: str, name: str, cells: tuple[str, ...] = CELLS) -> str:
    """A user id (name, or name-N) whose home is `cell` under the even split of `cells`."""
    shard_map = ShardMap.even(list(cells))
    for n in range(1000):
        user_id = name if n == 0 else f"{name}-{n}"
        if shard_map.home_of(user_id) == cell:
            return user_id
    raise AssertionError(f"no id like {name!r} lands in {cell}")


class LambdaInvokes:
    """Serves Lambda Invoke for the cells' Relays; records every call."""

    def __init__(self) -> None:
        self.by_arn: dict[str, Harness] = {}
        self.presence: dict[str, Harness] = {}  # a cell's presence function -> its harness
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (cell, type, payload)
        self.failing: set[str] = set()  # cells whose Relay times out

    def client(self) -> Any:
        client = boto3.client("lambda", region_name=REGION)
        client.meta.events.register("before-call.lambda.Invoke", self._invoke)
        return client

    def _invoke(self, params: dict[str, Any], model: Any, **kwargs: Any) -> Any:
        arn = function_name_in(params)
        if arn in self.presence:
            self.presence[arn].invokes.record(arn, json.loads(params["body"]))
            response = AWSResponse(params["url"], 202, HTTPHeaders(), None)
            return response, {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202}}
        target = self.by_arn[arn]
        invocation_type = params["headers"].get("X-Amz-Invocation-Type", "RequestResponse")
        payload = json.loads(params["body"])
        cell = target.settings.cell.cell_id if target.settings.cell else "?"
        self.calls.append((cell, invocation_type, payload))
        if cell in self.failing:
            raise TimeoutError(f"the Relay of {cell} did not answer")
        context = LambdaContext.for_invocation(
            RELAY.function_name, region=REGION, account_id=ACCOUNT_ID
        )
        with serving(target.services):
            answer = load_handler(RELAY.handler)(payload, context)
        body = json.dumps(answer).encode()
        status = 202 if invocation_type == "Event" else 200
        response = AWSResponse(params["url"], status, HTTPHeaders(), None)
        parsed = {
            "StatusCode": status,
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return response, parsed


@dataclass
class CellsUnderTest:
    """The harness of each cell, and the Relay invocations between them."""

    harnesses: dict[str, Harness]
    invokes: LambdaInvokes

    def __getitem__(self, cell: str) -> Harness:
        return self.harnesses[cell]

    def dump(self) -> dict[str, Any]:
        """Every item of every cell's tables (compare before and after a refusal)."""
        return {cell: harness.dump() for cell, harness in self.harnesses.items()}

    def signed_by(
        self, signer: str, request: dict[str, Any], *, to: str, at_ms: int | None = None
    ) -> dict[str, Any]:
        """`request` (whatever its `op` and `from` say) with the envelope a Relay call
        carries, signed with cell `signer`'s relay key: a real call when `signer` is its
        `from`, a forgery otherwise."""
        harness = self.harnesses[signer]
        unsigned = {
            **request,
            TARGET: to,
            SIGNED_AT: harness.clock.now_ms() if at_ms is None else at_ms,
            CALL_ID: b64url_encode(bytes(CALL_ID_BYTES)),
        }
        signature = harness.services.relay_signing_key().sign(relay_digest(unsigned, SIGNATURE))
        return {**unsigned, SIGNATURE: b64url_encode(signature.signature)}


@contextmanager
def cells_harness(
    cells: tuple[str, ...] = CELLS, check_frame: FrameCheck | None = None, **overrides: Any
) -> Iterator[CellsUnderTest]:
    """One Harness per cell, on one moto; cross-cell calls go through `LambdaInvokes`."""
    from moto import mock_aws

    serialize_moto()
    shard_map = ShardMap.even(list(cells))
    invokes = LambdaInvokes()
    clock = FixedClock(START_MS)
    with mock_aws(), moto_sqs_on(clock):
        posts = PostRecorder(check_frame) if check_frame else PostRecorder()
        harnesses: dict[str, Harness] = {}
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=MESH_BUCKET)
        mesh = MeshBucket(MESH_BUCKET, REGION, ACCOUNT_ID)
        for cell in cells:
            # Named by the deployed rule (deployment "test"): the Mover finds peers' by it.
            names = {spec.logical_name: table_name("test", cell, spec) for spec in TABLES}
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            create_tables(dynamodb, names)
            settle_url, settle_queue = settle_queue_of(f"messenger-test-{cell}-presence-settle")
            api = Api(
                api_id=f"{cell}api00000"[:10],
                stage="test",
                domain_name=f"{cell}.execute-api.{REGION}.amazonaws.com",
                region=REGION,
                account_id=ACCOUNT_ID,
            )
            settings = Settings(
                users_table=names["Users"],
                queue_table=names["Queue"],
                limits_table=names["Limits"],
                presence_function=presence_function(cell),
                connections_endpoint=f"https://{api.domain_name}/{api.stage}",
                cell=CellSettings(cell, shard_map, mesh),
                presence_settle_queue=settle_url,
                **overrides,
            )
            services = moto_services(settings, clock, posts, invokes.client)
            harness = Harness(
                dynamodb,
                clock,
                posts,
                services,
                settings,
                table_names=names,
                api=api,
                settle_queue=settle_queue,
            )
            harnesses[cell] = harness
            # As the cell's deploy does: its relay key, and its record in the directory.
            publish_relay_side(
                ServerKeys(dynamodb, names["Users"]),
                s3,
                MESH_BUCKET,
                ACCOUNT_ID,
                cell,
                PRIMARY_SIDE,
                relay_arn(cell),
            )
            invokes.by_arn[relay_arn(cell)] = harness
            invokes.presence[presence_function(cell)] = harness
        try:
            yield CellsUnderTest(harnesses, invokes)
        finally:
            use_services(None)
