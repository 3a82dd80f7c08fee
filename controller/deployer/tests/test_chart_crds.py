"""The chart's crds/ are the repository's generated CRDs, byte for byte (copy after `make gen`)."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).parents[3]


def test_the_chart_ships_the_generated_crds_unchanged() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (ROOT / "charts" / "agentgw" / "crds").glob("*.yaml")}
    assert generated
    assert shipped == generated, "copy crds/*.yaml into charts/agentgw/crds/"
