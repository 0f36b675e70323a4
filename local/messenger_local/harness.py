"""The real functions on moto, driven as API Gateway would: no sockets, no emulator.

`Harness` owns the moto tables, a clock its user can move, and a `PostRecorder`: a real
boto3 `apigatewaymanagementapi` client (served by moto) whose frames are recorded, and
which answers 410 GoneException for connections declared gone (moto itself never does).
Lambda's asynchronous invokes (the presence function) go to an `InvokeRecorder`: a real
boto3 `lambda` client whose Event invocations are answered 202 and kept; the harness runs
them, as Lambda would, once the invoking handler returned. The presence function's settle
queue is a moto SQS queue on the harness's clock (`moto_sqs_on`): a flap sent with
DelaySeconds comes back, to the presence function as an SQS batch (the event source
mapping of messenger_local.settle_queue), once the test has moved the clock past it.
The events are the emulator's (messenger_local.events) and so is the Lambda context.
The tests drive the handlers with it (tests/support/harness.py checks every frame
against docs/asyncapi.yaml); the benchmarks count the AWS calls the handlers make.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, Self
from unittest import mock
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.retries import standard

from messenger.config import Settings
from messenger.contract import (
    AUTHORIZER,
    INITIAL_STAGE_VARIABLES,
    PRESENCE_WORKER,
    ROUTES_BY_KEY,
    TABLES,
    WORKERS,
    create_table_request,
)
from messenger.dal.rate_limits import RATE_PREFIX
from messenger.logic.clock import FixedClock
from messenger.logic.presence_changes import MAX_SETTLE_DELAY_SECONDS
from messenger.logic.rate_limit import FRAMES_BUCKET, REFUSED_BUCKET
from messenger.wiring import CLIENT_CONFIG, Services, serving, use_services
from messenger_local.aws import ACCOUNT_ID, REGION, create_settle_queue
from messenger_local.events import (
    Api,
    Handshake,
    authorizer_context,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
)
from messenger_local.lambdas import LambdaContext
from messenger_local.settle_queue import SENT_TO, Batch, QueueSource
from messenger_protocol.frames import SendMessage
from messenger_protocol.limits import PRIMARY_DEVICE_ID

# The events of a deployed stage: the functions build @connections URLs from them.
API = Api(
    api_id="a1b2c3d4e5",
    stage="test",
    domain_name=f"a1b2c3d4e5.execute-api.{REGION}.amazonaws.com",
    region=REGION,
    account_id=ACCOUNT_ID,
)


class Caller(Protocol):
    """Whoever connects and sends through the harness: tests' users, benchmarks' users."""

    @property
    def user_id(self) -> str: ...

    def connect_query(
        self,
        *,
        ts: int | None = None,
        nonce: str | None = None,
        with_keys: bool = True,
        aud: str | None = None,
    ) -> dict[str, str]:
        """A signed connect query (docs/protocol.md §1), keys included unless told otherwise;
        with `aud`, in the v1.2 form bound to that endpoint."""
        ...

    def encrypt_for(self, peer: Self, text: str) -> tuple[str, str]:
        """(body, nonce), base64url: a NaCl Box of `text` for the peer (docs/protocol.md §5)."""
        ...


# Called with every frame the functions post or answer with; raises if one is wrong.
FrameCheck = Callable[[Any], None]


def _no_check(frame: Any) -> None:
    """The default: the frames are the functions' business, not the harness's."""


def handshake(
    connection_id: str,
    query: dict[str, str] | None,
    connected_at: int,
    source_ip: str = "127.0.0.1",
) -> Handshake:
    """A connection's upgrade request as API Gateway keeps it."""
    return Handshake(
        connection_id=connection_id,
        connected_at=connected_at,
        source_ip=source_ip,
        user_agent="pytest",
        headers=(("Host", API.domain_name), ("Sec-WebSocket-Version", "13")),
        query=tuple((query or {}).items()),
        port=443,
        scheme="https",
    )


WORKERS_BY_NAME = {worker.function_name: worker for worker in WORKERS}


def handler_of(route: str) -> str:
    """The dotted handler of a route, of "authorizer", or of a worker by function name."""
    if route == "authorizer":
        return AUTHORIZER.handler
    if route in WORKERS_BY_NAME:
        return WORKERS_BY_NAME[route].handler
    return ROUTES_BY_KEY[route].handler


def context_for(route: str) -> LambdaContext:
    """A Lambda context for one invocation of the function behind `route` (or the
    authorizer, or a worker by its function name)."""
    if route == "authorizer":
        name = AUTHORIZER.function_name
    elif route in WORKERS_BY_NAME:
        name = route
    else:
        name = ROUTES_BY_KEY[route].function_name
    return LambdaContext.for_invocation(name, region=REGION, account_id=ACCOUNT_ID)


def allowed(user_id: str, device_id: str = PRIMARY_DEVICE_ID) -> dict[str, Any]:
    """`requestContext.authorizer` of a connection the authorizer admitted as `user_id`
    (a linked device's carries its `deviceId`, docs/protocol.md §8)."""
    context = {"userId": user_id}
    if device_id != PRIMARY_DEVICE_ID:
        context["deviceId"] = device_id
    return authorizer_context(user_id, context, latency_ms=12)


class _Response(AWSResponse):
    """An HTTP answer made up by a test, shaped as botocore reads a real one."""

    def __init__(self, url: str, status: int, headers: dict[str, str], body: bytes) -> None:
        http_headers = HTTPHeaders()
        for name, value in headers.items():
            http_headers[name] = value
        super().__init__(url, status, http_headers, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def retry_at_once(client: Any) -> Any:
    """Make a client retry without waiting: botocore's standard retry handler, built by
    botocore for the client's own settings (the same retryable errors, the same number of
    attempts, the same retry quota), whose backoff is zero seconds instead of up to 20.

    What a retry does is the same, only its wait is gone: a test of a throttle proves how
    many attempts were made and what came of them without sitting out the backoff.
    Returns the client.
    """
    retries = client.meta.config.retries
    if retries.get("mode") != "standard":
        raise ValueError(f"retry_at_once needs botocore's standard retry mode, not {retries}")
    service = client.meta.service_model.service_id.hyphenize()
    event, unique_id = f"needs-retry.{service}", f"retry-config-{service}"
    events = client.meta.events
    events.unregister(event, unique_id=unique_id)
    handler = standard.register_retry_handler(client, retries.get("total_max_attempts"))
    events.unregister(event, unique_id=unique_id)

    def needs_retry(**kwargs: Any) -> float | None:
        delay = handler.needs_retry(**kwargs)
        return None if delay is None else 0.0

    events.register(event, needs_retry, unique_id=unique_id)
    return client


def throttle_dynamodb(
    client: Any, operation: str, times: int, code: str = "ThrottlingException"
) -> list[int]:
    """Make a DynamoDB client's next `times` `operation` calls fail with a throttle.

    Hooked on before-send, so botocore's retry mode sees a real 400 answer and retries it
    like one from DynamoDB (the harness's client, or the local stack's functions' own).
    The client retries at once from then on (`retry_at_once`): every attempt is made, only
    the backoff between them is not waited out. Returns a list that counts the failures.
    """
    retry_at_once(client)
    failures: list[int] = []
    target = f"DynamoDB_20120810.{operation}"

    def fail(request: Any, **kwargs: Any) -> Any:
        if request.headers.get("X-Amz-Target", b"").decode() != target:
            return None
        if len(failures) >= times:
            return None
        failures.append(1)
        return throttled_answer(request, code)

    client.meta.events.register_first("before-send.dynamodb", fail)
    return failures


def throttled_answer(request: Any, code: str = "ThrottlingException") -> AWSResponse:
    """What DynamoDB answers a throttled request, for a before-send hook to return in
    place of moto's answer (moto never throttles)."""
    # moto's own before-send hook runs after ours; point the request elsewhere so it
    # does not carry out the call we are failing.
    request.url = "http://throttled.invalid/"
    body = json.dumps(
        {
            "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
            "message": "Rate of requests exceeds the allowed throughput.",
        }
    )
    return _Response(request.url, 400, {"x-amzn-ErrorType": code}, body.encode())


@cache
def aws_session() -> boto3.Session:
    """The boto3 session every harness makes its clients from.

    moto's mock_aws gives each block a new default session, whose clients load botocore's
    service models from disk again: most of a harness's start-up. Clients made from one
    session share the models once loaded; each client is still new, with its own hooks.
    moto answers them as it answers any client made after it was imported (its botocore
    stubber is one of botocore's built-in handlers), so moto is imported first.
    """
    import moto.core.models  # noqa: F401

    return boto3.Session(region_name=REGION)


TABLE_NAMES = {"Users": "test-users", "Queue": "test-queue", "Limits": "test-limits"}
SETTLE_QUEUE_NAME = "test-presence-settle"
START_MS = 1_764_190_000_000


def load_handler(dotted: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    module, function = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), function)


def create_tables(client: Any, names: dict[str, str] = TABLE_NAMES) -> None:
    for spec in TABLES:
        name = names[spec.logical_name]
        client.create_table(**create_table_request(spec, name))
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )


CONNECTION_COUNT_PREFIXES = tuple(
    f"{RATE_PREFIX}{bucket}#" for bucket in (REFUSED_BUCKET, FRAMES_BUCKET)
)


def counts_refusals(item: dict[str, Any]) -> bool:
    """An item that counts a connection's frames or its refused frames, which every frame
    adds to (tests leave them out when they compare the tables before and after a
    refusal)."""
    return item.get("sk", {}).get("S", "").startswith(CONNECTION_COUNT_PREFIXES)


class PostRecorder:
    """Frames posted to @connections, per connection; 410 for connections in `gone`.

    `check_frame` sees every frame the functions emit: those posted here, and (through
    the Harness) those a route answers with.
    """

    def __init__(self, check_frame: FrameCheck = _no_check) -> None:
        self.check_frame = check_frame
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.attempts: list[str] = []
        # Connections the functions closed (DeleteConnection), in order.
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        # When each ack was posted (time.perf_counter(), by messageId): a sender's ack goes
        # out ahead of the route's end (handlers/send_message.py); benches time it.
        self.ack_posted_at: dict[str, float] = {}

    def client_factory(self, endpoint: str) -> Any:
        client = aws_session().client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            region_name=REGION,
            config=CLIENT_CONFIG,
        )
        events = client.meta.events
        events.register("before-call.apigatewaymanagementapi.PostToConnection", self._before_call)
        events.register("before-call.apigatewaymanagementapi.DeleteConnection", self._deleted)
        return client

    def _deleted(self, params: dict[str, Any], **kwargs: Any) -> Any:
        self.deleted.append(unquote(params["url_path"].rsplit("/", 1)[-1]))
        response = AWSResponse(params["url"], 204, HTTPHeaders(), None)
        return response, {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def _before_call(self, params: dict[str, Any], **kwargs: Any) -> Any:
        connection_id = unquote(params["url_path"].rsplit("/", 1)[-1])
        self.attempts.append(connection_id)
        if connection_id in self.gone:
            response = AWSResponse(params["url"], 410, HTTPHeaders(), None)
            return response, {
                "Error": {"Code": "GoneException", "Message": ""},
                "ResponseMetadata": {"HTTPStatusCode": 410},
            }
        frame = json.loads(params["body"])
        self.check_frame(frame)
        with self._lock:
            self.frames[connection_id].append(frame)
            if frame.get("type") == "ack":
                self.ack_posted_at[frame.get("messageId", "")] = time.perf_counter()
        return None  # let the real call go to moto

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        """Frames posted to a connection since the last take."""
        frames = self.frames.pop(connection_id, [])
        return frames

    def take_ack(self, connection_id: str, message_id: str | None) -> dict[str, Any] | None:
        """The ack of `message_id` posted to a connection (taken out of what it got), or
        None."""
        if message_id is None:
            return None
        with self._lock:
            frames = self.frames.get(connection_id, [])
            for at, posted in enumerate(frames):
                if posted.get("type") == "ack" and posted.get("messageId") == message_id:
                    return frames.pop(at)
        return None

    def of_type(self, connection_id: str, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.frames.get(connection_id, []) if f.get("type") == frame_type]


class InvokeRecorder:
    """Lambda Invoke calls with InvocationType Event: answered 202 and kept, in order."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.invoked: list[tuple[str, dict[str, Any]]] = []

    def client_factory(self) -> Any:
        client = aws_session().client("lambda", region_name=REGION, config=CLIENT_CONFIG)
        client.meta.events.register("before-call.lambda.Invoke", self._before_call)
        return client

    def _before_call(self, params: dict[str, Any], **kwargs: Any) -> Any:
        headers = params.get("headers", {})
        assert headers.get("X-Amz-Invocation-Type") == "Event", "only async invokes here"
        self.record(function_name_in(params), json.loads(params["body"]))
        response = AWSResponse(params["url"], 202, HTTPHeaders(), None)
        return response, {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202}}

    def record(self, name: str, payload: dict[str, Any]) -> None:
        self.pending.append((name, payload))
        self.invoked.append((name, payload))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        taken, self.pending = self.pending, []
        return taken


def _message_id_of(body: str) -> str | None:
    """The `messageId` of a frame's body, if it is JSON that names one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    message_id = document.get("messageId") if isinstance(document, dict) else None
    return message_id if isinstance(message_id, str) else None


def function_name_in(params: dict[str, Any]) -> str:
    """The FunctionName of a Lambda Invoke request, as botocore serialized it."""
    return unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])


@dataclass
class Connection:
    user: Caller
    connection_id: str
    connected_at: int
    handshake: Handshake
    # Which of the user's devices holds it (the authorizer's context says).
    device_id: str = PRIMARY_DEVICE_ID


@dataclass
class Harness:
    dynamodb: Any
    clock: FixedClock
    posts: PostRecorder
    services: Services
    settings: Settings
    table_names: dict[str, str] = field(default_factory=lambda: dict(TABLE_NAMES))
    api: Api = API
    invokes: InvokeRecorder = field(default_factory=InvokeRecorder)
    # False: asynchronous invocations wait until run_invocations() (tests of their timing).
    run_invocations_at_once: bool = True
    # The API stage's variables every frame's event carries (`dv`: the directory version).
    stage_variables: dict[str, str] = field(default_factory=lambda: dict(INITIAL_STAGE_VARIABLES))
    # The presence function's settle queue, as its event source mapping reads it.
    settle_queue: QueueSource | None = None

    def call(self, route: str, event: dict[str, Any]) -> Any:
        """Invoke the function behind a route (or "authorizer", or a worker) with this
        harness's Services, as Lambda would: in a process (here a context) of its own
        cell. The asynchronous invocations it made run once it returned."""
        with serving(self.services):
            response = load_handler(handler_of(route))(event, context_for(route))
        if self.run_invocations_at_once:
            self.run_invocations()
        return response

    def run_invocations(self) -> int:
        """Run the functions invoked asynchronously so far (and those they invoke), then
        the batches of the settle queue whose delay is over by the harness's clock (and
        what they invoke); how many invocations ran."""
        # The presence function is invoked by the name its settings give it.
        workers = {self.settings.presence_function: PRESENCE_WORKER.function_name}
        ran = 0
        while True:
            for name, payload in self.invokes.take():
                self._run_worker(workers.get(name, name), payload)
                ran += 1
            batch = self._settled_batch()
            if batch is None and not self.invokes.pending:
                return ran
            if batch is not None and self.settle_queue is not None:
                response = self._run_worker(PRESENCE_WORKER.function_name, batch.event)
                self.settle_queue.settle(batch, response)
                ran += 1

    def _settled_batch(self) -> Batch | None:
        """The settle queue's next batch whose delay is over (QueueSource.next_batch)."""
        return None if self.settle_queue is None else self.settle_queue.next_batch()

    def settle_flaps(self) -> int:
        """Move the clock past the longest a flap waits on the settle queue, and run what
        comes back from it then (each flap told, or overtaken); how many invocations ran."""
        self.clock.advance(MAX_SETTLE_DELAY_SECONDS)
        return self.run_invocations()

    def _run_worker(self, worker: str, event: dict[str, Any]) -> Any:
        with serving(self.services):
            return load_handler(handler_of(worker))(event, context_for(worker))

    def settle_queue_depth(self) -> int:
        """Flaps on the settle queue, waiting or visible (0 without a queue)."""
        if self.settle_queue is None:
            return 0
        return self.settle_queue.depth()

    # --- connecting ------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The stage's URL as clients sign it (`aud`, docs/protocol.md §1): what API
        Gateway's events name, wss://domainName/stage."""
        return f"wss://{self.api.domain_name}/{self.api.stage}"

    def authorize(
        self,
        query: dict[str, str] | None,
        connection_id: str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> dict[str, Any]:
        """The authorizer's decision; what it raises (a failure of ours) goes up."""
        request = handshake(connection_id or new_id(), query, self.clock.now_ms(), source_ip)
        return self.call("authorizer", authorizer_event(self.api, request, new_id()))

    def connect(self, user: Caller, **query_options: Any) -> Connection:
        """Authorize (registering on first use) and run $connect; fails the test if refused."""
        ts = self.clock.now_s()
        # Signed for this stage (v1.2) unless the test asks for another form (aud=None: v1.1).
        query_options.setdefault("aud", self.endpoint)
        query = user.connect_query(ts=ts, **query_options)
        decision = self.authorize(query)
        effect = decision["policyDocument"]["Statement"][0]["Effect"]
        assert effect == "Allow", f"connect refused for {user.user_id}"
        device_id = (decision.get("context") or {}).get("deviceId", PRIMARY_DEVICE_ID)
        at = self.clock.now_ms()
        request = handshake(new_id(), query, at)
        context = allowed(user.user_id, device_id)
        response = self.call("$connect", connect_event(self.api, request, context, new_id()))
        assert response["statusCode"] == 200
        return Connection(user, request.connection_id, at, request, device_id)

    def disconnect(self, connection: Connection) -> dict[str, Any]:
        event = disconnect_event(
            self.api,
            connection.handshake,
            allowed(connection.user.user_id, connection.device_id),
            1000,
            "Client-side close frame status code",
            new_id(),
        )
        return self.call("$disconnect", event)

    # --- frames ----------------------------------------------------------------------

    def send_raw(self, connection: Connection, body: str, route_key: str) -> Any:
        """Deliver a raw frame body to a route's handler; the route response frame, if any."""
        event = message_event(
            self.api,
            connection.handshake,
            allowed(connection.user.user_id, connection.device_id),
            route_key,
            body,
            new_id(),
            new_id(),
            self.stage_variables,
        )
        response = self.call(route_key, event)
        assert response["statusCode"] == 200
        if "body" not in response:
            # An ack posted ahead of the route's answer (handlers/send_message.py) is the
            # reply, as the client reads it: the frame the connection got.
            return self.posts.take_ack(connection.connection_id, _message_id_of(body))
        reply = json.loads(response["body"])
        self.posts.check_frame(reply)
        return reply

    def send(self, connection: Connection, frame: dict[str, Any]) -> Any:
        """Route a frame as API Gateway does ($request.body.action), return the reply."""
        action = frame.get("action")
        route_key = (
            action
            if isinstance(action, str) and action in ROUTES_BY_KEY and not action.startswith("$")
            else "$default"
        )
        return self.send_raw(connection, json.dumps(frame), route_key)

    def message(
        self, sender: Connection, to: Caller, text: str, message_id: str, sent_at: int = 1
    ) -> dict[str, Any]:
        """A sendMessage frame from the sender's user to `to`, its body really sealed."""
        body, nonce = sender.user.encrypt_for(to, text)
        frame = SendMessage(
            body=body, message_id=message_id, to=to.user_id, nonce=nonce, sent_at=sent_at
        )
        return frame.to_wire()

    # --- faults ----------------------------------------------------------------------

    def throttle(self, operation: str, times: int, code: str = "ThrottlingException") -> list[int]:
        """Make the functions' next `times` DynamoDB `operation` calls fail with a throttle
        (see `throttle_dynamodb`); a list that counts the failures."""
        return throttle_dynamodb(self.services.dynamodb, operation, times, code)

    # --- state -----------------------------------------------------------------------

    def dump(self, *, with_limits: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Every item of the Users and Queue tables (tests only: compare before and after a
        refusal); `with_limits` adds the Limits table, whose rate-limit buckets count every
        well-formed frame, refused or not (a frame refused RATE_LIMITED writes nothing),
        leaving out the count of each connection's refused frames, which every refusal
        adds to (docs/protocol.md §3: one that keeps sending them is closed)."""
        state = {}
        names = ("Users", "Queue", "Limits") if with_limits else ("Users", "Queue")
        for name in (self.table_names[logical] for logical in names):
            items: list[dict[str, Any]] = []
            for page in self.dynamodb.get_paginator("scan").paginate(TableName=name):
                items += [item for item in page["Items"] if not counts_refusals(item)]
            state[name] = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        return state

    def queue_of(self, user: Caller) -> list[dict[str, Any]]:
        response = self.dynamodb.query(
            TableName=self.table_names["Queue"],
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": user.user_id}},
        )
        return response["Items"]


_MOTO_LOCK = threading.RLock()


def serialize_moto() -> None:
    """Let moto handle one request at a time.

    moto's in-memory backend is not thread-safe (a transaction deep-copies a table while
    another thread writes it). DynamoDB itself serializes writes to an item, so running
    moto's requests one at a time keeps concurrency tests faithful to the real service.
    One at a time, they get moto as the local stack does (messenger_local.moto_speed):
    the same answers, sooner.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    from messenger_local import moto_speed

    if getattr(BotocoreStubber.process_request, "_serialized", False):
        return
    moto_speed.install()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with _MOTO_LOCK:
            moto_speed.mark_serialized(True)
            try:
                return original(self, request)
            finally:
                moto_speed.mark_serialized(False)

    process_request._serialized = True  # type: ignore[attr-defined]
    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]


def sqs_client() -> Any:
    """An SQS client of the harnesses' session, which notes where it sends."""
    return SENT_TO.watch(aws_session().client("sqs", region_name=REGION, config=CLIENT_CONFIG))


def moto_services(
    settings: Settings, clock: FixedClock, posts: PostRecorder, lambda_client_factory: Any
) -> Services:
    """The functions' Services on moto: their own DynamoDB client, posts recorded, Lambda
    invokes served by `lambda_client_factory`'s clients, the settle queue in moto's SQS."""
    return Services(
        settings=settings,
        dynamodb=aws_session().client("dynamodb", region_name=REGION, config=CLIENT_CONFIG),
        clock=clock,
        management_client_factory=posts.client_factory,
        lambda_client_factory=lambda_client_factory,
        sqs_client_factory=sqs_client,
    )


@contextmanager
def moto_sqs_on(clock: FixedClock) -> Iterator[None]:
    """moto's SQS keeps time by the harness's clock (as it would under freezegun): a
    message sent with DelaySeconds becomes visible once the test has moved the clock past
    its delay, and never sooner, however long the test takes; nothing waits for it."""
    from moto.sqs import models

    real_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return clock.now_ns() / 1e9 if dt is None else real_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    with mock.patch.multiple(models, unix_time=unix_time, unix_time_millis=unix_time_millis):
        yield


def settle_queue_of(name: str) -> tuple[str, QueueSource]:
    """A settle queue in moto's SQS (inside mock_aws): its URL, and its event source."""
    url = create_settle_queue(sqs_client(), name)
    return url, QueueSource(sqs_client(), url, REGION)


@contextmanager
def harness(check_frame: FrameCheck = _no_check, **settings_overrides: Any) -> Iterator[Harness]:
    """A Harness inside moto's mock_aws; the functions use it until the block ends.

    `check_frame` sees every frame the functions post or answer with; the settings
    overrides go to the functions' `Settings` (rate limits, say).
    """
    from moto import mock_aws

    serialize_moto()
    clock = FixedClock(START_MS)
    with mock_aws(), moto_sqs_on(clock):
        dynamodb = aws_session().client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        settle_url, settle_queue = settle_queue_of(SETTLE_QUEUE_NAME)
        settings = Settings(
            users_table=TABLE_NAMES["Users"],
            queue_table=TABLE_NAMES["Queue"],
            limits_table=TABLE_NAMES["Limits"],
            presence_settle_queue=settle_url,
            **settings_overrides,
        )
        posts = PostRecorder(check_frame)
        invokes = InvokeRecorder()
        services = moto_services(settings, clock, posts, invokes.client_factory)
        use_services(services)
        try:
            yield Harness(
                dynamodb,
                clock,
                posts,
                services,
                settings,
                invokes=invokes,
                settle_queue=settle_queue,
            )
        finally:
            use_services(None)
