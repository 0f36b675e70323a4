"""`messenger local`'s directory key: kept with the state across restarts, new with
--fresh (which empties the state directory), readable by its owner only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from messenger_local.cli import forget_state
from messenger_local.directory_key import KEY_FILE, kept_directory_key

pytestmark = pytest.mark.unit


def test_a_restart_keeps_the_key_and_fresh_makes_a_new_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Given a first run
    first = kept_directory_key(state)
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600
    # When it starts again with the same state, it signs with the same key
    assert bytes(kept_directory_key(state)) == bytes(first)
    # And after --fresh with another one
    forget_state(state)
    assert bytes(kept_directory_key(state)) != bytes(first)


def test_without_a_state_directory_each_run_has_its_own_key() -> None:
    assert bytes(kept_directory_key(None)) != bytes(kept_directory_key(None))
