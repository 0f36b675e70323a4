"""A deployment of cells synthesized without `-c directoryKey` (issue 22): each cell stack
with peers gets a synth-time warning saying what its functions will not verify, since
they take their shard map only from a directory signed with that key (docs/scale.md, "The
directory's trust chain and its load"). A warning, not a refusal: the key is the output of
the directory's stack, which is deployed from the same app first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.infra


def warnings_of(app: Any, stack: str) -> list[str]:
    """The stack's synth warnings, as `cdk synth` prints them (the assembly keeps them in
    the stack's metadata file)."""
    artifact = app.manifest()["artifacts"][stack]
    metadata = json.loads((app.outdir / artifact["additionalMetadataFile"]).read_text())
    return [
        f"{entry['data']} [{path}]"
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
    ]


def test_given_cells_without_the_directory_key_then_each_cell_stack_warns_what_it_cannot_verify(
    cells_dev,
):
    for cell_id in ("c0", "c1"):
        (warning,) = [
            text
            for text in warnings_of(cells_dev, f"Messenger-dev-{cell_id}")
            if "directoryKey" in text
        ]
        assert warning.startswith("no -c directoryKey")
        assert f"[/Messenger-dev-{cell_id}]" in warning
        assert "DIRECTORY_PUBLIC_KEY" in warning
        assert "cannot verify the signed directory" in warning
        assert "refuse every request" in warning
        assert "DirectoryPublicKey" in warning


def test_given_the_directory_key_then_no_cell_stack_warns(cells_prod):
    for cell_id in ("c0", "c1", "c2"):
        warnings = warnings_of(cells_prod, f"Messenger-prod-{cell_id}")
        assert not [text for text in warnings if "directoryKey" in text]
