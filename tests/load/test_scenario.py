"""Scenario files and their verdicts, on synthetic records (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.generator import Record
from loadtest.report import evaluate, markdown, phase_figures
from loadtest.runner import scaled
from loadtest.scenario import ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"

SCENARIO = """
name: t
stack: {gateway: "models: {}"}
load:
  phases:
    - {name: healthy, seconds: 2, rate: 10}
    - {name: outage, seconds: 2, rate: 10}
    - {name: recovered, seconds: 2, rate: 10}
faults:
  - {at: 2, action: kill, target: fraud-v1}
expect:
  max_errors: 0
  shares:
    - {phase: outage, field: served_by, value: "fallback:onnx", min: 0.9, skip_seconds: 0.5}
  recovery:
    - {field: served_by, value: fraud-v1, after: 4, within_seconds: 0.5}
  latency:
    - {phase: healthy, p99_ms: 10}
"""


@pytest.fixture
def scenario_path(tmp_path: Path) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(SCENARIO)
    return path


def records(outage_by: str, error_at: float | None = None) -> list[Record]:
    out = []
    for i in range(60):
        t = i / 10
        by = "fraud-v1" if t < 2 or t >= 4.2 else outage_by
        out.append(
            Record(
                t,
                0.002,
                500 if t == error_at else 200,
                i % 2,
                "primary",
                by,
                "none",
                0.1 + (i % 2) * 0.5,
            )
        )
    return out


def test_every_shipped_scenario_parses() -> None:
    names = {p.stem for p in SCENARIOS.glob("*.yaml")}
    assert "steady" in names
    for path in SCENARIOS.glob("*.yaml"):
        assert load_scenario(path).name == path.stem


def test_verdicts_pass_on_good_records(scenario_path: Path) -> None:
    verdicts = evaluate(load_scenario(scenario_path), records("fallback:onnx"))
    assert all(v.ok for v in verdicts), verdicts


def test_each_expectation_can_fail(scenario_path: Path) -> None:
    scenario = load_scenario(scenario_path)
    failed = {
        v.text.split(":")[0]
        for v in evaluate(scenario, records("fraud-v1", error_at=1.0))
        if not v.ok
    }
    assert "client-visible errors" in failed
    assert "outage" in failed  # the fallback share
    slow = [
        Record(r.intended, 0.5, 200, r.label, r.variant, r.served_by)
        for r in records("fallback:onnx")
    ]
    assert any(not v.ok and v.text.startswith("healthy: p99") for v in evaluate(scenario, slow))
    never_back = [r for r in records("fallback:onnx") if r.intended < 4]
    assert any(not v.ok and "back inf s" in v.text for v in evaluate(scenario, never_back))


def test_phase_figures_include_auc_of_received_scores(scenario_path: Path) -> None:
    figures = phase_figures(load_scenario(scenario_path), records("fallback:onnx"))
    assert figures["healthy"]["requests"] == 20
    assert figures["healthy"]["auc_of_received_scores"] == 1.0
    assert figures["outage"]["served_by"] == {"fallback:onnx": 20}
    assert figures["recovered"]["served_by"] == {"fallback:onnx": 2, "fraud-v1": 18}


def test_scaling_shrinks_every_duration(scenario_path: Path) -> None:
    half = scaled(load_scenario(scenario_path), 0.5)
    assert [p.seconds for p in half.load.phases] == [1.0, 1.0, 1.0]
    assert half.faults[0].at == 1.0
    assert half.expect.recovery[0].after == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SCENARIO.replace("name: t", "name: t\ncolour: red"),
            "colour: Extra inputs are not permitted",
        ),
        (SCENARIO.replace("phase: outage", "phase: nowhere"), "unknown phase 'nowhere'"),
        (SCENARIO.replace("action: kill", "action: explode"), "faults.0.action"),
        (SCENARIO.replace(", target: fraud-v1", ""), "a kill fault needs a target"),
    ],
)
def test_bad_scenarios_are_refused_with_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_markdown_summary_names_the_verdicts(scenario_path: Path) -> None:
    doc = {"scenario": "t", "description": "", "passed": False, "faults": [],
           "phases": phase_figures(load_scenario(scenario_path), records("fallback:onnx")),
           "verdicts": [{"ok": False, "text": "client-visible errors: 3 (at most 0)"}]}  # fmt: skip
    text = markdown(doc)
    assert "FAILED" in text and "- FAIL client-visible errors: 3" in text
