"""The deployment's directory, as a shard move on AWS reads and publishes it: the directory
function itself (messenger_directory.handlers.publish), invoked synchronously, so that a
move's map is published in the same one-at-a-time line as every merge (its reserved
concurrency is 1) and signed by the same KMS key (docs/scale.md "Shard moves").

The function runs in the directory's account; the Mover's role may invoke it and nothing
else of that account (infra/mover.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from messenger_protocol.cells import MOVE_CURRENT, MOVE_MAP, MOVE_PUBLISH, MOVE_REQUEST, ShardMap


class DirectoryCallFailed(RuntimeError):
    """The directory function failed (its error, as Lambda reports it): the step fails and
    is run again (nothing is published twice: a version names one document)."""


class LambdaDirectoryPublisher:
    """`logic.shard_move.DirectoryPublisher` through the directory function."""

    def __init__(self, client_factory: Callable[[], Any], function: str) -> None:
        self._client_factory = client_factory
        self._function = function

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        response = self._client_factory().invoke(
            FunctionName=self._function,
            InvocationType="RequestResponse",
            Payload=json.dumps(request).encode(),
        )
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise DirectoryCallFailed(f"the directory function failed: {body[:500]!r}")
        answer = json.loads(body)
        if not isinstance(answer, dict):
            raise DirectoryCallFailed(f"the directory function answered {answer!r}")
        return answer

    def current_map(self) -> ShardMap:
        answer = self._call({MOVE_REQUEST: MOVE_CURRENT})
        return ShardMap.from_compact(str(answer[MOVE_MAP]))

    def publish(self, shard_map: ShardMap) -> int:
        answer = self._call({MOVE_REQUEST: MOVE_PUBLISH, MOVE_MAP: shard_map.to_compact()})
        version = answer.get("version")
        if type(version) is not int:
            raise DirectoryCallFailed(f"the directory function answered {answer!r}")
        return version
