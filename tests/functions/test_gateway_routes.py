"""`ping`, answered by API Gateway from the stage (messenger.contract.GATEWAY_ROUTES), as
the local emulator renders its template: `pong` with the stage's `dv`, or on a side a
switch fenced, `error` MOVED (docs/protocol.md §7 Fencing)."""

from __future__ import annotations

import json

import pytest

from messenger.contract import GATEWAY_ROUTES_BY_KEY
from messenger_local.gateway import render_template
from messenger_protocol.frames import ErrorFrame, PongFrame, read_server_frame
from messenger_protocol.names import ErrorCode

pytestmark = pytest.mark.unit

PING = GATEWAY_ROUTES_BY_KEY["ping"].response


@pytest.mark.parametrize("variables", [{"dv": "7"}, {"dv": "7", "fenced": "0"}])
def test_a_stage_not_fenced_answers_pong_with_its_directory_version(variables):
    frame = read_server_frame(json.loads(render_template(PING, variables)))
    assert isinstance(frame, PongFrame) and frame.dv == 7


def test_a_fenced_stage_answers_moved_naming_the_ping():
    frame = read_server_frame(json.loads(render_template(PING, {"dv": "7", "fenced": "1"})))
    assert isinstance(frame, ErrorFrame)
    assert (frame.code, frame.ref) == (ErrorCode.MOVED, "ping")
