"""The AWS calls the functions make, as a test or a benchmark sees and steers them.

Real boto3 clients whose calls botocore serializes and parses as always; hooked so that
- `PostRecorder`: every frame posted to @connections is recorded (and checked), and a
  connection declared gone answers 410 GoneException (moto itself never does);
- `InvokeRecorder`: Lambda's asynchronous invokes (the presence function) are answered
  202 and kept, for the harness to run once the invoking handler returned;
- `throttle_dynamodb`: a DynamoDB client's next calls of an operation fail with a
  throttle, which botocore's retry mode retries as DynamoDB's own.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from messenger.wiring import CLIENT_CONFIG
from messenger_local.aws import REGION

# Called with every frame the functions post or answer with; raises if one is wrong.
FrameCheck = Callable[[Any], None]


def no_frame_check(frame: Any) -> None:
    """The default: the frames are the functions' business, not the harness's."""


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


def throttle_dynamodb(
    client: Any, operation: str, times: int, code: str = "ThrottlingException"
) -> list[int]:
    """Make a DynamoDB client's next `times` `operation` calls fail with a throttle.

    Hooked on before-send, so botocore's retry mode sees a real 400 answer and retries it
    like one from DynamoDB (the harness's client, or the local stack's functions' own).
    Returns a list that counts the failures.
    """
    failures: list[int] = []
    target = f"DynamoDB_20120810.{operation}"

    def fail(request: Any, **kwargs: Any) -> Any:
        if request.headers.get("X-Amz-Target", b"").decode() != target:
            return None
        if len(failures) >= times:
            return None
        failures.append(1)
        # moto's own before-send hook runs after ours; point the request elsewhere so
        # it does not carry out the call we are failing.
        request.url = "http://throttled.invalid/"
        body = json.dumps(
            {
                "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                "message": "Rate of requests exceeds the allowed throughput.",
            }
        )
        return _Response(request.url, 400, {"x-amzn-ErrorType": code}, body.encode())

    client.meta.events.register_first("before-send.dynamodb", fail)
    return failures


class PostRecorder:
    """Frames posted to @connections, per connection; 410 for connections in `gone`.

    `check_frame` sees every frame the functions emit: those posted here, and (through
    the Harness) those a route answers with.
    """

    def __init__(self, check_frame: FrameCheck = no_frame_check) -> None:
        self.check_frame = check_frame
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.attempts: list[str] = []

    def client_factory(self, endpoint: str) -> Any:
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            region_name=REGION,
            config=CLIENT_CONFIG,
        )
        events = client.meta.events
        events.register("before-call.apigatewaymanagementapi.PostToConnection", self._before_call)
        return client

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
        self.frames[connection_id].append(frame)
        return None  # let the real call go to moto

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        """Frames posted to a connection since the last take."""
        frames = self.frames.pop(connection_id, [])
        return frames

    def of_type(self, connection_id: str, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.frames.get(connection_id, []) if f.get("type") == frame_type]


class InvokeRecorder:
    """Lambda Invoke calls with InvocationType Event: answered 202 and kept, in order."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.invoked: list[tuple[str, dict[str, Any]]] = []

    def client_factory(self) -> Any:
        client = boto3.client("lambda", region_name=REGION, config=CLIENT_CONFIG)
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


def function_name_in(params: dict[str, Any]) -> str:
    """The FunctionName of a Lambda Invoke request, as botocore serialized it."""
    return unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
