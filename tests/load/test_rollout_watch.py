"""The canary-rollout scenario's parsing and its end-of-run verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.rollout_watch import verdicts
from loadtest.scenario import RolloutOutcome, ScenarioError, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios" / "canary-rollout.yaml"


def test_the_scenario_has_a_good_and_a_skewed_variant() -> None:
    scenario = load_scenario(SCENARIO)
    good, skewed = scenario.with_variant("good"), scenario.with_variant("skewed")
    assert good.expect.rollout == RolloutOutcome(state="promoted")
    assert skewed.expect.rollout is not None and skewed.expect.rollout.state == "rolled_back"
    assert "{url:fraud-skewed}" in skewed.stack.gateway
    assert [f.action for f in scenario.faults] == ["rollout-start"]


def test_a_rollout_expectation_needs_a_rollout_start_fault(tmp_path: Path) -> None:
    text = SCENARIO.read_text().replace("  - {at: 2, action: rollout-start, model: fraud}\n", "")
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("faults:\n", "faults: []\n"))
    with pytest.raises(ScenarioError, match="rollout: needs a rollout-start fault"):
        load_scenario(path)
    path.write_text(
        SCENARIO.read_text().replace("action: rollout-start, model: fraud", "action: rollout-start")
    )
    with pytest.raises(ScenarioError, match="a rollout-start fault needs a model"):
        load_scenario(path)


def found(commands: list[str], state: str, to_zero: float | None = None) -> dict[str, object]:
    return {"state": state, "reason": "r", "steps": 4, "interval_seconds": 10.0,
            "first_failing_check_to_weight_0_seconds": to_zero, "canary_requests_served": 12,
            "records": [{"command": c} for c in commands]}  # fmt: skip


def test_promotion_needs_one_record_per_step_then_the_promotion() -> None:
    good = ["start", "analysis-step", "analysis-step", "analysis-step", "analysis-promote"]
    assert all(ok for ok, _ in verdicts(found(good, "promoted"), RolloutOutcome(state="promoted")))
    held = ["start", "analysis-failed-checks", *good[1:]]
    assert all(ok for ok, _ in verdicts(found(held, "promoted"), RolloutOutcome(state="promoted")))
    short = ["start", "analysis-step", "analysis-promote"]
    assert not verdicts(found(short, "promoted"), RolloutOutcome(state="promoted"))[1][0]


def test_rollback_must_come_within_the_intervals() -> None:
    expect = RolloutOutcome(state="rolled_back", within_intervals=2)
    commands = ["start", "analysis-failed-checks", "analysis-rollback"]
    assert all(ok for ok, _ in verdicts(found(commands, "rolled_back", 11.2), expect))
    late = verdicts(found(commands, "rolled_back", 21.0), expect)
    assert not late[1][0] and "served 12 requests" in late[1][1]
    assert not verdicts(found(commands, "promoted"), expect)[0][0]
