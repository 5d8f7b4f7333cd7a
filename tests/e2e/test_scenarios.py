"""Smoke runs of shipped scenarios against real processes (shortened with --scale)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.runner import main as run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"


@pytest.mark.parametrize(("name", "scale"), [("steady", 0.5), ("primary-kill", 0.7)])
def test_scenario_smoke(name: str, scale: float, tmp_path: Path) -> None:
    code = run_scenario(SCENARIOS / f"{name}.yaml", tmp_path, scale)
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0, report["verdicts"]
    assert report["passed"] is True
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
    assert sum(p["requests"] for p in report["phases"].values()) > 500
