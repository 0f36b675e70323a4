"""The directory's version on every cell's stage, where API Gateway answers `ping` from it.

A `pong` carries `dv` (docs/protocol.md §2, §6) without running a function: the stage's
`dv` variable is the response template's (`messenger.contract.GATEWAY_ROUTES`). After each
merge that publishes a new version, the directory function sets it on the stage behind
every cell URL of the directory:

    set_directory_version(apigateway_of_region, directory)

A URL that is not an execute-api one (a custom domain, the local emulator) names no stage
here: it is skipped, and its clients learn of the new version on their next `syncDone`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger_directory.observability import logger
from messenger_protocol.cells import (
    DIRECTORY_VERSION_STAGE_VARIABLE,
    FENCED_STAGE_VARIABLE,
    Directory,
)

_EXECUTE_API_URL = re.compile(
    r"^wss://(?P<api_id>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com"
    r"(?:\.cn)?/(?P<stage>[A-Za-z0-9_-]+)/?$"
)


@dataclass(frozen=True, order=True)
class StageAddress:
    """Which stage of which API, in which region: what UpdateStage needs."""

    region: str
    api_id: str
    stage: str


def stage_of(url: str) -> StageAddress | None:
    """The stage behind a cell's URL, None if the URL is not API Gateway's own."""
    match = _EXECUTE_API_URL.match(url)
    if match is None:
        return None
    return StageAddress(match["region"], match["api_id"], match["stage"])


def stage_variables_of(directory: Directory) -> dict[str, str]:
    """The stage variables a cell's stage holds for this directory."""
    return {DIRECTORY_VERSION_STAGE_VARIABLE: str(directory.version)}


def set_directory_version(
    apigateway_of_region: Callable[[str], Any], directory: Directory
) -> list[StageAddress]:
    """Set `dv` on each cell's stage (each once, however many cells share it); the stages
    updated. UpdateStage merges the variables it is given into the stage's.

    A stage that refuses (another account's, a throttled call, an API deleted) is logged
    and skipped: every other cell still learns the version within seconds (docs/protocol.md
    §6 "No polling"), and the next merge tries it again."""
    stages = sorted({stage for url in directory.urls.values() if (stage := stage_of(url))})
    updated: list[StageAddress] = []
    for stage in stages:
        try:
            apigateway_of_region(stage.region).update_stage(
                ApiId=stage.api_id,
                StageName=stage.stage,
                StageVariables=stage_variables_of(directory),
            )
        except Exception:
            logger.exception("directory version not set on a stage", extra={"stage": stage})
            continue
        updated.append(stage)
    return updated


def set_fenced(apigateway_of_region: Callable[[str], Any], url: str, fenced: bool) -> bool:
    """Mark the stage behind a cell side's URL fenced (API Gateway then answers `ping`
    there with `error` MOVED, messenger.contract.GATEWAY_ROUTES) or not; False when the
    URL names no stage of API Gateway's own (nothing set)."""
    stage = stage_of(url)
    if stage is None:
        return False
    apigateway_of_region(stage.region).update_stage(
        ApiId=stage.api_id,
        StageName=stage.stage,
        StageVariables={FENCED_STAGE_VARIABLE: "1" if fenced else "0"},
    )
    return True
