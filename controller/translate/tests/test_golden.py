"""Every golden file translates to its expected output, and every gateway's resources form a
consistent xDS snapshot. `REFRESH_GOLDEN=1` rewrites the expected parts instead."""

from __future__ import annotations

import os
import pathlib

import pytest
import yaml

from controller import translate
from controller.translate.tests import golden
from controller.xds import snapshot


@pytest.mark.parametrize("path", golden.cases(), ids=lambda p: str(p.relative_to(golden.TESTDATA)))
def test_translation_matches_the_golden_file(path: pathlib.Path) -> None:
    text = path.read_text()
    inputs_text, expected = golden.split(text)
    out = translate.translate(golden.inputs(path, inputs_text))
    got = golden.render(out, golden.hidden(path))
    if os.environ.get("REFRESH_GOLDEN"):
        path.write_text(golden.refreshed(inputs_text, got))
        return
    assert expected is not None, f"{path} has no '# Output' line: run with REFRESH_GOLDEN=1"
    assert yaml.safe_load(got) == yaml.safe_load(expected)
    for resources in out.resources.values():
        snapshot.build(resources)


def test_there_are_golden_files_in_every_suite() -> None:
    suites = {p.parent.name for p in golden.cases()}
    assert {"seed", "gateways", "routes", "attachment", "backends", "policies"} <= suites
