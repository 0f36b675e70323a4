"""Every `cdk deploy` and `cdk synth` the README and docs/infra.md show synthesizes with
today's code: a documented command that synthesis refuses (a context key renamed, a
placement rule added) fails here, not in a reader's terminal.

The commands are read from the documents' ```bash blocks (continued lines joined, the
block's own `VAR=...` lines substituted); their `-c key=value` context is synthesized in
process, as `cdk synth` would, cdk-nag included, where the deployer's profile points
(eu-west-1), with an ARN's `REGION` and `ACCOUNT` placeholders filled in from there. An
SSM parameter named for push is answered as the CLI's cached lookup would be.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from infra.app import build_app
from tests.infra.conftest import ACCOUNT, NO_BUNDLING, ssm_lookup

pytestmark = [pytest.mark.infra, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = (REPO / "README.md", REPO / "docs" / "infra.md")
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
ASSIGNMENT = re.compile(r"^([A-Z_]+)=(\S+)$")
# Where the deployer's profile points when a command names no region.
PROFILE_REGION = "eu-west-1"
PROFILE = {"CDK_DEFAULT_REGION": PROFILE_REGION, "CDK_DEFAULT_ACCOUNT": ACCOUNT}
# The documents' placeholders in ARNs, as a reader fills them in: the profile's.
PLACEHOLDERS = {":REGION:": f":{PROFILE_REGION}:", ":ACCOUNT:": f":{ACCOUNT}:"}


def documented_commands(text: str) -> list[list[str]]:
    """The words of each `npx cdk deploy|synth` in the text's bash blocks."""
    found = []
    for block in BASH_BLOCK.findall(text):
        lines = block.replace("\\\n", " ").splitlines()
        variables: dict[str, str] = {}
        for line in map(str.strip, lines):
            if assignment := ASSIGNMENT.match(line):
                variables[assignment[1]] = assignment[2]
                continue
            if not line.startswith(("npx cdk deploy", "npx cdk synth")):
                continue
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            found.append(shlex.split(line, comments=True))
    return found


def context_of(words: list[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-c", "--context"):
            key, _, setting = value.partition("=")
            for placeholder, filled in PLACEHOLDERS.items():
                setting = setting.replace(placeholder, filled)
            context[key] = setting
    return context


def lookups_for(context: dict[str, Any]) -> dict[str, str]:
    """The cached SSM answers for the push parameters the command names."""
    region = str(context.get("region") or PROFILE_REGION)
    answers: dict[str, str] = {}
    for key, value in context.items():
        if key.startswith("push:") and str(value).startswith("/"):
            platform = key.removeprefix("push:")
            # A cell deployment looks the parameter up in every cell's account and region.
            for account, where in _places(context) or [(ACCOUNT, region)]:
                arn = f"arn:aws:sns:{where}:{account}:app/{platform}/messenger"
                answers |= ssm_lookup(str(value), arn, account, where)
    return answers


def _places(context: dict[str, Any]) -> list[tuple[str, str]]:
    cells = str(context.get("cells") or "")
    places = []
    for entry in filter(None, cells.split(",")):
        account, _, region = entry.partition(":")[2].partition("/")
        places.append((account, region))
    return places


COMMANDS = {
    f"{path.name}: {' '.join(words)}": words
    for path in DOCUMENTS
    for words in documented_commands(path.read_text())
}


def test_the_documents_show_deploy_commands_with_context():
    # A parser that finds nothing would test nothing
    assert len(COMMANDS) >= 5
    assert any("standby:" in name for name in COMMANDS)
    assert any("tableNames:c0" in name for name in COMMANDS)


def test_a_documented_command_is_read_whole():
    text = (
        "```bash\nCELLS=c0:1/us-east-1\n"
        "npx cdk deploy --all -c cells=$CELLS \\\n    -c env=prod  # why\n```\n"
    )
    assert documented_commands(text) == [
        ["npx", "cdk", "deploy", "--all", "-c", "cells=c0:1/us-east-1", "-c", "env=prod"]
    ]


@pytest.mark.parametrize("words", list(COMMANDS.values()), ids=list(COMMANDS))
def test_a_documented_command_synthesizes(words, tmp_path):
    context = context_of(words)
    app = build_app(
        {**NO_BUNDLING, **lookups_for(context), **context}, outdir=str(tmp_path), environ=PROFILE
    )
    # cdk-nag runs as a validation plugin: a finding fails the synthesis
    app.synth()
    assert list(tmp_path.glob("*.template.json"))
