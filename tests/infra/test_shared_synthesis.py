"""The syntheses the infra tests share (tests/infra/conftest.py): one per context for the
whole run, written by whichever pytest-xdist worker asks first and read by the others. What
another worker reads must be what the synthesizing one holds."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import (
    ACKNOWLEDGEMENTS_FILE,
    CELLS_DEV_CONTEXT,
    DEV_CONTEXT,
    Synthesized,
    SynthesizedCells,
    from_assembly,
)

pytestmark = pytest.mark.infra


def same_stack(read: Synthesized, made: Synthesized) -> None:
    assert read.config == made.config
    assert read.stack_name == made.stack_name
    assert read.json == made.json
    assert read.validation_report == made.validation_report
    assert read.acknowledgements == made.acknowledgements


def acknowledgements_in(outdir) -> list[tuple[str, str, str]]:
    return [tuple(entry) for entry in json.loads((outdir / ACKNOWLEDGEMENTS_FILE).read_text())]


def test_given_a_shared_synthesis_then_another_worker_reads_the_same_stack(dev):
    # Given the `dev` app, synthesized once for the run
    # When another worker reads it from its cloud assembly
    read = from_assembly(DEV_CONTEXT, dev.outdir, acknowledgements_in(dev.outdir), cells=False)

    # Then it holds the same template, report and acknowledgements
    assert isinstance(read, Synthesized)
    same_stack(read, dev)
    assert read.acknowledgements


def test_given_a_shared_synthesis_of_cells_then_another_worker_reads_every_stack(cells_dev):
    read = from_assembly(
        CELLS_DEV_CONTEXT, cells_dev.outdir, acknowledgements_in(cells_dev.outdir), cells=True
    )

    assert isinstance(read, SynthesizedCells)
    assert read.cells == cells_dev.cells
    assert read.validation_report == cells_dev.validation_report
    assert sorted(read.stacks) == sorted(cells_dev.stacks)
    for name, stack in cells_dev.stacks.items():
        same_stack(read.stacks[name], stack)
