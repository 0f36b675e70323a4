"""The AWS services the functions use, served by moto in this process.

`EmbeddedAws` runs moto's `ThreadedMotoServer` and creates what the stack would:
the DynamoDB tables of `contract.TABLES` (through `contract.create_table_request`,
TTL enabled), one SNS platform application per push platform, and with cells the
directory's bucket. The functions reach it through clients made from its session
(messenger_local.function_services), at the `AWS_ENDPOINT_URL` their environment names.

Clients in this process skip the HTTP hop: `serve_in_process(session)` hooks a boto3
session so that its requests to the server's address are answered by the same moto
backends on the calling thread (moto's own botocore stubber, the way `mock_aws`
answers). Everything else about the call is real botocore: parameter validation,
serialization, signing, response parsing, errors and retries. Outside tools (curl,
the AWS CLI, another process) use the server, which serves the same backends.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.core.model_instances import model_data
from moto.server import ThreadedMotoServer

from messenger.contract import (
    PRESENCE_SETTLE_MAX_RECEIVES,
    PRESENCE_SETTLE_RETENTION_SECONDS,
    PRESENCE_SETTLE_VISIBILITY_SECONDS,
    TABLES,
    Env,
    create_table_request,
)
from messenger_local import moto_speed
from messenger_local.browser_guard import GuardedWsgi
from messenger_protocol.names import PushPlatform

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's account
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PUSH_APP_ENV = {
    "APNS": Env.PUSH_APP_APNS,
    "APNS_SANDBOX": Env.PUSH_APP_APNS_SANDBOX,
    "GCM": Env.PUSH_APP_GCM,
}


def _check_port_free(host: str, port: int) -> None:
    """Fail with a clear error: moto's server thread would die silently and hang start()."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as error:
        raise OSError(f"cannot serve AWS on {host}:{port}: {error.strerror}") from error
    finally:
        probe.close()


def _forget_dynamodb_instances() -> None:
    """Drop moto's dashboard references to DynamoDB objects (the data itself stays).

    Only DynamoDB's: the SNS ones are how `/moto-api/data.json` shows the pushes sent.
    """
    for model in model_data.get("dynamodb", {}).values():
        model.instances_tracked = []  # type: ignore[attr-defined]


class MotoGate:
    """Lets one request at a time into moto's backends, whichever way it came.

    moto's in-memory backends are not thread-safe (a TransactWriteItems deep-copies a
    table while another request writes to it, and fails). DynamoDB itself serializes the
    writes to an item, so handling moto's requests one by one stays faithful to the
    service while the emulator's functions run concurrently.
    """

    # moto's BaseModel.__new__ appends every instance to its class's `instances_tracked`
    # (for its dashboard), copies included: the whole-table copy TransactWriteItems takes
    # for each action would stay referenced forever, gigabytes over a long session.
    FORGET_INSTANCES_EVERY = 200

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self._served += 1
        if self._served % self.FORGET_INSTANCES_EVERY == 0:
            _forget_dynamodb_instances()
        moto_speed.mark_serialized(True)

    def __exit__(self, *exc_info: object) -> None:
        moto_speed.mark_serialized(False)
        self._lock.release()

    @property
    def served(self) -> int:
        """Requests let in so far."""
        return self._served


class _OneAtATime:
    """A WSGI app that serves one request at a time, through the gate."""

    def __init__(self, app: Any, gate: MotoGate) -> None:
        self._app = app
        self._gate = gate

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._gate:
            return list(self._app(environ, start_response))


class InProcessTransport:
    """A botocore `before-send` handler: moto answers requests to `endpoint` in this thread.

    The request is handed to moto's BotocoreStubber under the address AWS would have
    (`https://{service}.{region}.amazonaws.com`), which is how moto picks the service
    and the region; requests to any other address go on over HTTP, untouched.
    """

    def __init__(self, endpoint: str, region: str, gate: MotoGate) -> None:
        self.endpoint = endpoint
        self._prefix = endpoint + "/"
        self._region = region
        self._gate = gate
        self._stubber = BotocoreStubber()
        self.active = True

    @property
    def unique_id(self) -> str:
        return f"messenger-local-moto-{self.endpoint}"

    def __call__(
        self, request: AWSPreparedRequest, event_name: str, **kwargs: Any
    ) -> AWSResponse | None:
        if not self.active or not (request.url + "/").startswith(self._prefix):
            return None
        service = event_name.split(".")[1]  # before-send.dynamodb.GetItem
        original_url = request.url
        parts = urlsplit(original_url)
        host = f"{service}.{_signing_region(request) or self._region}.amazonaws.com"
        request.url = urlunsplit(("https", host, parts.path, parts.query, ""))
        with self._gate:
            answer = self._stubber.process_request(request)
        if answer is None:
            request.url = original_url
            return None
        status, headers, body = answer
        return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]


def _signing_region(request: AWSPreparedRequest) -> str | None:
    """The region of a SigV4 signature: Credential=KEY/DATE/REGION/SERVICE/aws4_request."""
    authorization = request.headers.get("Authorization")
    if isinstance(authorization, bytes):
        authorization = authorization.decode("ascii", "replace")
    if not authorization or "Credential=" not in authorization:
        return None
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return scope[2] if len(scope) > 2 else None


DEAD_LETTERS_SUFFIX = "-dead"


def create_settle_queue(sqs: Any, name: str) -> str:
    """The presence function's settle queue, with the stack's visibility timeout,
    retention and dead-letter queue (`<name>-dead`, after PRESENCE_SETTLE_MAX_RECEIVES
    tries: infra/presence_settle.py); its URL. Idempotent, as SQS's CreateQueue is with
    the same attributes."""
    dead = sqs.create_queue(QueueName=name + DEAD_LETTERS_SUFFIX)["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(PRESENCE_SETTLE_MAX_RECEIVES),
    }
    return str(
        sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(PRESENCE_SETTLE_VISIBILITY_SECONDS),
                "MessageRetentionPeriod": str(PRESENCE_SETTLE_RETENTION_SECONDS),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
    )


class EmbeddedAws:
    """moto's server on host:port (0 picks a free port), started and stopped explicitly."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = REGION) -> None:
        self.host = host
        self.region = region
        self._requested_port = port
        self._server: ThreadedMotoServer | None = None
        self._port = 0
        self._gate = MotoGate()
        self._transport: InProcessTransport | None = None
        self._session: boto3.Session | None = None

    @property
    def gate(self) -> MotoGate:
        """Hold it to have moto's backends to yourself (no request is being served)."""
        return self._gate

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("EmbeddedAws is not started")
        return f"http://{self.host}:{self._port}"

    def start(self) -> None:
        """Serve moto; returns once it accepts requests."""
        # werkzeug logs every request at INFO, and adds its own handler when the
        # logger has none: that would bury the emulator's log lines.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self._requested_port:
            _check_port_free(self.host, self._requested_port)
        moto_speed.install()
        server = ThreadedMotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        server.start()
        wsgi_server = server._server
        assert wsgi_server is not None
        # Unsigned and browser requests are refused before they wait for the gate.
        wsgi_server.app = GuardedWsgi(_OneAtATime(wsgi_server.app, self._gate))
        self._server = server
        self._port = server.get_host_and_port()[1]
        self._transport = InProcessTransport(self.endpoint, self.region, self._gate)
        self._session = self.serve_in_process(
            boto3.Session(
                region_name=self.region,
                aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
                aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
            )
        )

    def serve_in_process(self, session: boto3.Session) -> boto3.Session:
        """Hook `session`: its clients' calls to this server skip HTTP (see the module doc).

        Only clients made after the hook is in place are affected.
        """
        if self._transport is None:
            raise RuntimeError("EmbeddedAws is not started")
        session.events.register(
            "before-send",
            self._transport,  # type: ignore[arg-type]
            unique_id=self._transport.unique_id,
        )
        return session

    def stop(self) -> None:
        """Stop serving (moto's data goes with it)."""
        if self._transport is not None:
            # Clients hooked to this server now meet a closed port, as over HTTP.
            self._transport.active = False
            self._transport = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(
        self, service: str, *, endpoint_url: str | None = None, config: Config | None = None
    ) -> Any:
        """A boto3 client of this server's session (its fake credentials and region),
        whatever the process environment says: at this server (answered in the calling
        thread), or at `endpoint_url` (over HTTP)."""
        if self._session is None:
            raise RuntimeError("EmbeddedAws is not started")
        return self._session.client(  # type: ignore[call-overload]
            service, endpoint_url=endpoint_url or self.endpoint, config=config
        )

    def create_tables(self, prefix: str) -> dict[Env, str]:
        """Every table of the contract (those not there yet); names by environment variable."""
        dynamodb = self.client("dynamodb")
        pages = dynamodb.get_paginator("list_tables").paginate()
        existing = {name for page in pages for name in page["TableNames"]}
        names: dict[Env, str] = {}
        for spec in TABLES:
            name = f"{prefix}{spec.logical_name}"
            names[spec.env] = name
            if name in existing:  # kept from an earlier run (--state)
                continue
            dynamodb.create_table(**create_table_request(spec, name))
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        return names

    def delete_tables(self, names: list[str]) -> None:
        """Drop tables a stack made on a shared server."""
        dynamodb = self.client("dynamodb")
        for name in names:
            dynamodb.delete_table(TableName=name)

    def delete_bucket(self, name: str) -> None:
        """Drop a bucket a stack made on a shared server, with what is in it."""
        s3 = self.client("s3")
        for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)
        # moto's dashboard (/moto-api/data.json) would fail on the objects it still tracks:
        # each asks for its bucket, which is gone.
        with self._gate:
            for model in model_data.get("s3", {}).values():
                tracked = getattr(model, "instances_tracked", [])
                model.instances_tracked = [  # type: ignore[attr-defined]
                    instance
                    for instance in tracked
                    if name
                    not in (getattr(instance, "bucket_name", None), getattr(instance, "name", None))
                ]

    def create_settle_queue(self, prefix: str) -> dict[Env, str]:
        """The presence function's settle queue (messenger_local.settle_queue); its URL by
        environment variable."""
        url = create_settle_queue(self.client("sqs"), f"{prefix}PresenceSettle")
        return {Env.PRESENCE_SETTLE_QUEUE: url}

    def delete_settle_queues(self, urls: list[str]) -> None:
        """Drop settle queues a stack made on a shared server (their dead-letter queues
        too), with what they hold."""
        sqs = self.client("sqs")
        for url in urls:
            for queue in (url, url + DEAD_LETTERS_SUFFIX):
                sqs.delete_queue(QueueUrl=queue)

    def create_push_apps(self, prefix: str) -> dict[Env, str]:
        """One SNS platform application per push platform (those not there yet); ARNs by
        environment variable."""
        sns = self.client("sns")
        pages = sns.get_paginator("list_platform_applications").paginate()
        existing = {
            app["PlatformApplicationArn"] for page in pages for app in page["PlatformApplications"]
        }
        arns: dict[Env, str] = {}
        for platform in PushPlatform:
            name = f"{prefix}{platform}"
            arn = f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:app/{platform}/{name}"
            if arn not in existing:  # else kept from an earlier run (--state)
                arn = sns.create_platform_application(
                    Name=name,
                    Platform=platform,
                    Attributes={"PlatformCredential": "local", "PlatformPrincipal": "local"},
                )["PlatformApplicationArn"]
            arns[PUSH_APP_ENV[platform]] = arn
        return arns
