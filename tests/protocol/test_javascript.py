"""The JavaScript SDK's generated constants: written from messenger_protocol, and not stale."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from messenger_protocol import client_rules, javascript, limits
from messenger_protocol.names import ErrorCode, PushPlatform

pytestmark = pytest.mark.unit


def test_given_the_package_then_the_committed_files_are_what_it_generates() -> None:
    # When the files are generated again, Then each is byte for byte the committed one
    # (regenerate: python -m messenger_protocol.javascript)
    for file_name, module in javascript.GENERATED.items():
        assert (javascript.SDK_DIR / file_name).read_text() == javascript.render(module), file_name
    assert javascript.main(["--check"]) == 0


def test_given_a_stale_file_then_the_check_fails_and_a_write_mends_it(tmp_path: Path) -> None:
    # Given fresh files, one of them then edited by hand
    assert javascript.main(["--output", str(tmp_path)]) == 0
    edited = tmp_path / "limits.generated.js"
    edited.write_text(edited.read_text().replace("24000", "24001"))
    # When checked, Then it fails
    assert javascript.main(["--check", "--output", str(tmp_path)]) == 1
    # When written again, Then the check passes
    assert javascript.main(["--output", str(tmp_path)]) == 0
    assert javascript.main(["--check", "--output", str(tmp_path)]) == 0


def test_given_a_missing_file_then_the_check_fails(tmp_path: Path) -> None:
    assert javascript.main(["--check", "--output", str(tmp_path)]) == 1


@pytest.mark.parametrize("module", [limits, client_rules])
def test_given_a_module_then_every_constant_is_exported_under_its_name(module: ModuleType) -> None:
    # When the module is rendered
    exported = re.findall(r"^export const (\w+) = ", javascript.render(module), re.M)
    # Then each of its public UPPER_CASE names is there once, in the order the module has them
    public = getattr(module, "__all__", dir(module))
    assert set(exported) == {name for name in public if name.isupper()}
    assert exported == [name for name, _ in javascript.constants(module)]
    assert len(exported) >= 15


def test_given_each_kind_of_value_then_it_is_written_as_javascript() -> None:
    module = ModuleType("messenger_protocol.example")
    vars(module).update(
        MAX_THINGS=2**53,
        HALF_SECOND_SECONDS=0.5,
        WHOLE_SECONDS=60.0,
        NAME='say "hi"',
        ID_PATTERN=r"^a/b$",
        ENABLED=False,
        CODES=frozenset({ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL}),
        MESSAGES=("one", "two"),
        TOKEN_PATTERNS={PushPlatform.GCM: r"^[0-9]+$"},
        not_a_constant=1,
        HELPER=lambda: None,
    )

    # When rendered (a module without a source file has no comments to carry)
    lines = javascript.render_constants(module, comments={"MAX_THINGS": [" why it is so"]})

    # Then each value has its JavaScript form, under its comment
    assert "// why it is so\nexport const MAX_THINGS = 9007199254740992;" in lines
    assert "export const HALF_SECOND_SECONDS = 0.5;" in lines
    assert "export const WHOLE_SECONDS = 60;" in lines
    assert 'export const NAME = "say \\"hi\\"";' in lines
    assert "export const ID_PATTERN = /^a\\/b$/;" in lines
    assert "export const ENABLED = false;" in lines
    assert 'export const CODES = new Set(["INTERNAL", "RATE_LIMITED"]);' in lines
    assert 'export const MESSAGES = Object.freeze(["one", "two"]);' in lines
    assert 'export const TOKEN_PATTERNS = Object.freeze({\n  "GCM": /^[0-9]+$/,\n});' in lines
    assert "not_a_constant" not in lines
    assert "HELPER" not in lines


def test_given_a_value_without_a_javascript_form_then_rendering_says_which() -> None:
    module = ModuleType("messenger_protocol.example")
    vars(module).update(WHEN=object())
    with pytest.raises(javascript.Unrepresentable, match="WHEN"):
        javascript.render_constants(module, comments={})


def test_given_limits_then_comments_above_and_beside_a_constant_are_carried() -> None:
    rendered = javascript.render(limits)
    assert "// the largest integer a JavaScript client holds exactly\nexport const MAX_SENT_AT" in (
        rendered
    )
    # A section's heading is not a constant's comment
    assert "--- ids" not in rendered
