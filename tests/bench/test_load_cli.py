"""`python -m bench load`: every option that shapes a run reaches the run's config."""

from __future__ import annotations

import dataclasses

import pytest

from bench.load import LoadConfig
from bench.load.cli import RUN_OPTIONS, config_from, parse_args

pytestmark = pytest.mark.unit


def test_every_field_of_the_config_is_an_option() -> None:
    # Given the fields of a run's config
    fields = [field.name for field in dataclasses.fields(LoadConfig)]
    # Then each is an option of the command line, and nothing else is
    assert sorted(RUN_OPTIONS) == sorted(fields)


def test_options_default_to_the_full_run_and_override_it() -> None:
    # Given no option, then a few
    defaults = config_from(parse_args([]))
    config = config_from(
        parse_args(["--users", "100", "--in-flight", "16", "--rate-per-minute", "30"])
    )
    # Then the defaults are the full run's, and the options given replace them
    assert defaults == LoadConfig()
    assert (config.users, config.in_flight, config.rate_per_minute) == (100, 16, 30)
    assert config.messages == LoadConfig().messages
