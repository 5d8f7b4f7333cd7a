"""Smoke runs of shipped scenarios against real processes (shortened with --scale)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.runner import main as run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"


@pytest.mark.parametrize(
    ("name", "scale", "primary_states"),
    [("steady", 0.5, {"closed"}), ("primary-kill", 0.7, {"closed", "open"})],
)
def test_scenario_smoke(name: str, scale: float, primary_states: set[str], tmp_path: Path) -> None:
    run_scenario(SCENARIOS / f"{name}.yaml", tmp_path, scale)
    report = json.loads((tmp_path / "report.json").read_text())
    # Latency bounds are for full-length runs on a quiet machine (`make chaos`); a short
    # smoke run beside a test suite can see one slow scheduling hiccup in its p99.
    verdicts = [v for v in report["verdicts"] if ": p99 " not in v["text"]]
    assert verdicts and all(v["ok"] for v in verdicts), report["verdicts"]
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
    assert sum(p["requests"] for p in report["phases"].values()) > 500
    # The polled breaker timeline: the kill opens the primary's breaker, steady never does.
    states = {s["state"] for s in report["breaker_timeline"] if s["breaker"] == "fraud/fraud-v1"}
    assert states - {"unknown", "half_open"} == primary_states
