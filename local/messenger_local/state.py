"""`messenger local --state DIR`: the embedded AWS outlives a restart.

What is kept is moto's DynamoDB and SNS backends of the stack's account and region:
every table with every item (users and their keys, queued messages, nonces, rate
limits, push devices) and the SNS platform applications with their endpoints, so that
after a restart the same userIds belong to the same keys, queued messages wait for
`sync`, and pushes reach the same devices. The stack's API id is kept with them: the
table names derive from it.

`StateKeeper.save()` writes a snapshot taken under moto's gate (no request half done)
to a temporary file and renames it over the last one, so the directory always holds a
whole snapshot. The keeper saves every `SAVE_EVERY_SECONDS` while anything reached moto,
and once more when the stack stops: a crash loses at most the last second or so of
changes. The snapshot is a pickle of moto's own objects, tied to the moto version that
wrote it (a different version refuses to load it rather than guess).
"""

from __future__ import annotations

import json
import os
import pickle
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from moto.dynamodb.models import dynamodb_backends
from moto.sns.models import sns_backends

from messenger_local.aws import ACCOUNT_ID, EmbeddedAws

SAVE_EVERY_SECONDS = 1.0
SNAPSHOT = "moto-backends.pickle"
MANIFEST = "state.json"


class StateError(Exception):
    """The state directory cannot be used (another moto wrote it, or it is damaged)."""


@dataclass(frozen=True)
class Manifest:
    """What says which stack a snapshot belongs to."""

    api_id: str
    stage: str
    region: str
    moto_version: str
    # How many cells the tables are of (0: a stack without cells); written since cells.
    cells: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def _backends(region: str) -> tuple[Any, Any]:
    return dynamodb_backends[ACCOUNT_ID][region], sns_backends[ACCOUNT_ID][region]


class StateKeeper:
    """Saves the embedded AWS to a directory, periodically, and loads it back."""

    def __init__(self, directory: Path, aws: EmbeddedAws) -> None:
        self.directory = directory
        self._aws = aws
        self._manifest: Manifest | None = None
        self._saved_at_request = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self, cells: int = 0) -> Manifest | None:
        """Put a saved snapshot into moto's backends; its manifest, or None if there is none.

        `cells`: how many the stack has (0: none). Kept tables of another number of cells
        would put users in other homes than their data: refused."""
        manifest_path = self.directory / MANIFEST
        if not manifest_path.exists():
            return None
        try:
            manifest = Manifest(**json.loads(manifest_path.read_text()))
        except (ValueError, TypeError) as error:
            raise StateError(f"{manifest_path} is damaged: {error}") from error
        if manifest.moto_version != version("moto"):
            raise StateError(
                f"{self.directory} was written by moto {manifest.moto_version}, this is moto "
                f"{version('moto')}: start without --state, or with another directory"
            )
        if manifest.region != self._aws.region:
            raise StateError(f"{self.directory} holds region {manifest.region}")
        if manifest.cells != cells:
            kept = f"--cells {manifest.cells}" if manifest.cells else "no --cells"
            raise StateError(
                f"{self.directory} holds the tables of a stack started with {kept}: "
                "start it that way, or with another directory"
            )
        snapshot = (self.directory / SNAPSHOT).read_bytes()
        with self._aws.gate:
            # Our own file, in a directory the user named.
            saved_dynamodb, saved_sns = pickle.loads(snapshot)
            dynamodb, sns = _backends(manifest.region)
            dynamodb.__dict__.update(saved_dynamodb.__dict__)
            sns.__dict__.update(saved_sns.__dict__)
        self._manifest = manifest
        return manifest

    def start(self, manifest: Manifest) -> None:
        """Save now, then every SAVE_EVERY_SECONDS in a background thread until `stop`."""
        self._manifest = manifest
        self.directory.mkdir(parents=True, exist_ok=True)
        self.save()
        self._thread = threading.Thread(target=self._run, name="messenger-local-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop saving in the background, and save once more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._manifest is not None:
            self.save()

    def _run(self) -> None:
        while not self._stop.wait(SAVE_EVERY_SECONDS):
            self.save()

    def save(self) -> None:
        """Write a whole snapshot, unless nothing reached moto since the last one."""
        assert self._manifest is not None
        with self._aws.gate:
            served = self._aws.gate.served
            if served == self._saved_at_request:
                return
            snapshot = pickle.dumps(_backends(self._manifest.region))
        _write_atomically(self.directory / SNAPSHOT, snapshot)
        _write_atomically(self.directory / MANIFEST, self._manifest.to_json().encode())
        self._saved_at_request = served


def new_manifest(api_id: str, stage: str, region: str, cells: int = 0) -> Manifest:
    return Manifest(
        api_id=api_id, stage=stage, region=region, moto_version=version("moto"), cells=cells
    )


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
