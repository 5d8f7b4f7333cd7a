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


def test_silent_corruption_is_detected_and_the_fallback_policy_recovers(tmp_path: Path) -> None:
    """A quarter-length run of both variants with Feast, a model server and the fault proxy:
    the corruption errors nowhere, goes critical fast, and on_critical: fallback moves the
    traffic to the fallback model and back without an operator."""
    run_scenario(SCENARIOS / "silent-feature-corruption.yaml", tmp_path, 0.25)
    reports = {
        v: json.loads((tmp_path / v / "report.json").read_text()) for v in ("flag", "fallback")
    }
    for variant, report in reports.items():
        # The AUC bound is for the full run, whose judged answers are the whole holdout.
        verdicts = [
            v for v in report["verdicts"] if "AUC" not in v["text"] and ": p99 " not in v["text"]
        ]
        assert verdicts and all(v["ok"] for v in verdicts), (variant, report["verdicts"])
        corrupted = report["phases"]["corrupted"]
        assert corrupted["4xx"] == 0 and corrupted["errors"] == 0
        assert report["data_quality"]["phases"]["corrupted"]["worst_status"] == "critical"
        assert report["data_quality"]["phases"]["healthy"]["worst_status"] == "ok"
    assert reports["flag"]["data_quality"]["phases"]["corrupted"]["mitigation_seconds"] == 0
    assert reports["fallback"]["data_quality"]["phases"]["corrupted"]["mitigation_seconds"] > 3
    fallback_served = reports["fallback"]["phases"]["corrupted"]["served_by"]
    assert fallback_served.get("fallback:onnx", 0) > fallback_served.get("fraud-v1", 0)
