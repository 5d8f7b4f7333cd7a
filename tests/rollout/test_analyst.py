"""The rollout analysis as a state machine: a fake clock, figures put straight into the
cohorts, a fake Prometheus, and the real routing file edited and reloaded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import MODELS, runtime_of

from gateway.quality.canary_checks import CheckResult, judged
from gateway.rollout import commands, runs
from gateway.rollout.analyst import Analyst
from gateway.service.runtime import Runtime
from gateway.settings import load_config
from gateway.settings.analysis import CheckSettings

CHECKS = """        checks:
          - {name: error_rate, max: 0.05}
          - {name: score_psi, max: 0.2}
"""


def config_text(checks: str = CHECKS, run: str = "", max_failed: int = 2) -> str:
    return f"""# the routing file
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary:
      name: fraud-v2   # the retrained model
      url: http://127.0.0.1:8002
      weight: 0
      analysis:
        steps: [10, 50, 100]
        interval_seconds: 60
        min_requests: 100
        max_failed_checks: {max_failed}
{checks}{run}"""


class Rig:
    """The analyst over a real file, with a clock the test moves."""

    def __init__(self, path: Path, prometheus: Callable[[CheckSettings], CheckResult]) -> None:
        self.path = path
        self.now = 1000.0
        self.runtime: Runtime = runtime_of(load_config(path))
        self.reloads = 0

        async def reload() -> None:
            self.reloads += 1
            self.runtime = runtime_of(load_config(path), self.runtime)

        async def query(check: CheckSettings) -> CheckResult:
            return prometheus(check)

        self.analyst = Analyst(lambda: self.runtime, reload, query, lambda: self.now)

    def tick(self) -> None:
        asyncio.run(self.analyst.tick())

    def pick_up(self) -> None:
        """What the gateway's file watch does: load the file as it is now."""
        self.runtime = runtime_of(load_config(self.path), self.runtime)

    @property
    def analysis(self) -> Any:
        canary = load_config(self.path).settings.models["fraud"].canary
        assert canary is not None and canary.analysis is not None
        return canary.analysis

    @property
    def weight(self) -> float:
        canary = load_config(self.path).settings.models["fraud"].canary
        assert canary is not None
        return canary.weight

    def traffic(self, canary: int = 150, errors: int = 0, skewed: bool = False) -> None:
        """An interval's worth of requests in both cohorts."""
        cohorts = self.runtime.models["fraud"].cohorts
        assert cohorts is not None
        rng = np.random.default_rng(7)
        primary_scores = rng.beta(1, 30, 400)
        canary_scores = rng.beta(1, 30, canary) ** (0.3 if skewed else 1.0)
        cohorts.primary.requests += 400
        for score in primary_scores:
            cohorts.primary.answered(0.01, [float(score)])
        cohorts.canary.requests += canary
        cohorts.canary.errors += errors
        for score in canary_scores:
            cohorts.canary.answered(0.012, [float(score)])

    def interval(self, **traffic: Any) -> None:
        """Start an interval (the first tick after a change), fill it, and judge it."""
        self.tick()
        self.traffic(**traffic)
        self.now += 61
        self.tick()


def audit(path: Path) -> list[dict[str, Any]]:
    log = path.with_name(f"{path.name}.audit.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def never(check: CheckSettings) -> CheckResult:
    raise AssertionError("no prometheus check configured")


@pytest.fixture
def started(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text())
    runs.start(path, "fraud", path.with_name("gateway.yaml.audit.jsonl"))
    return path


def test_passing_steps_walk_up_and_the_last_one_promotes(started: Path) -> None:
    rig = Rig(started, never)
    assert (rig.analysis.state, rig.analysis.step, rig.weight) == ("progressing", 1, 10)
    rig.interval()
    assert (rig.analysis.step, rig.weight) == (2, 50)
    assert rig.reloads == 1  # the gateway applies its own step at once
    rig.interval()
    assert (rig.analysis.step, rig.weight) == (3, 100)
    rig.interval()
    config = load_config(started).settings.models["fraud"]
    assert config.primary.name == "fraud-v2" and config.canary is not None
    assert (config.canary.name, config.canary.weight) == ("fraud-v1", 0)
    assert rig.analysis.state == "promoted"
    records = audit(started)
    assert [r["command"] for r in records] == [
        "start", "analysis-step", "analysis-step", "analysis-promote"
    ]  # fmt: skip
    assert all(r["who"] == runs.ANALYST for r in records[1:])
    assert records[1]["after"]["weight"] == 50
    assert {c["name"] for c in records[1]["checks"]} == {"error_rate", "score_psi"}
    assert all(c["ok"] for c in records[1]["checks"])
    assert "# the routing file" in started.read_text()  # comments kept
    assert "# the retrained model" in started.read_text()


def test_an_interval_is_judged_only_after_interval_seconds(started: Path) -> None:
    rig = Rig(started, never)
    rig.tick()
    rig.traffic()
    rig.now += 59
    rig.tick()
    assert rig.analysis.step == 1 and audit(started)[-1]["command"] == "start"
    rig.now += 2
    rig.tick()
    assert rig.analysis.step == 2


def test_too_few_canary_requests_make_the_step_wait(started: Path) -> None:
    rig = Rig(started, never)
    rig.interval(canary=60)
    assert rig.analysis.step == 1
    cohorts = rig.runtime.models["fraud"].cohorts
    assert cohorts is not None and cohorts.waiting and "60 of 100" in cohorts.waiting
    rig.traffic(canary=60)  # the interval goes on until it has min_requests
    rig.tick()
    assert rig.analysis.step == 2


def test_a_failed_check_is_counted_and_the_step_held(started: Path) -> None:
    rig = Rig(started, never)
    rig.interval(errors=30)  # error rate 0.2 > 0.05
    analysis = rig.analysis
    assert (analysis.state, analysis.step, analysis.failed_checks, rig.weight) == (
        "progressing", 1, 1, 10
    )  # fmt: skip
    record = audit(started)[-1]
    assert record["command"] == "analysis-failed-checks"
    failed = [c for c in record["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["error_rate"]
    assert failed[0]["value"] == pytest.approx(0.2) and failed[0]["bound"] == {"max": 0.05}
    rig.pick_up()
    rig.interval()  # a good interval afterwards passes the step
    assert (rig.analysis.step, rig.analysis.failed_checks) == (2, 1)


def test_max_failed_checks_rolls_back_with_the_reason(started: Path) -> None:
    rig = Rig(started, never)
    rig.interval(errors=30)
    rig.pick_up()
    rig.interval(skewed=True)  # score_psi fails: the second failed check
    analysis = rig.analysis
    assert (analysis.state, rig.weight, analysis.failed_checks) == ("rolled_back", 0, 2)
    assert analysis.reason is not None and "score_psi" in analysis.reason
    assert "failed checks 2 of 2" in analysis.reason
    record = audit(started)[-1]
    assert record["command"] == "analysis-rollback" and record["who"] == runs.ANALYST
    assert record["after"] == {"weight": 0, "state": "rolled_back", "step": 1, "failed_checks": 2}
    status = rig.runtime.models["fraud"].cohorts
    assert status is not None and status.last_checks is not None
    psi = next(c for c in status.last_checks if c["name"] == "score_psi")
    assert psi["ok"] is False and psi["value"] > 0.2  # type: ignore[operator]


def test_two_checks_failing_in_one_interval_count_twice(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text())
    runs.start(path, "fraud", tmp_path / "gateway.yaml.audit.jsonl")
    rig = Rig(path, never)
    rig.interval(errors=30, skewed=True)
    assert (rig.analysis.state, rig.analysis.failed_checks) == ("rolled_back", 2)


def test_prometheus_checks_pass_and_fail_as_their_bound_says(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    checks = "        checks:\n          - {name: prometheus, query: 'sum(x)', max: 5, url: http://127.0.0.1:9}\n"
    path.write_text(config_text(checks, max_failed=1))
    runs.start(path, "fraud", tmp_path / "gateway.yaml.audit.jsonl")
    values = iter([3.0, 7.0])
    rig = Rig(path, lambda check: judged(check, next(values)))
    rig.interval()
    assert rig.analysis.step == 2
    rig.interval()
    assert rig.analysis.state == "rolled_back"
    assert "prometheus 7 > max 5.0" in (rig.analysis.reason or "")


def test_an_unevaluable_prometheus_check_fails(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    checks = "        checks:\n          - {name: prometheus, query: 'up', min: 1, url: http://127.0.0.1:9}\n"
    path.write_text(config_text(checks, max_failed=1))
    runs.start(path, "fraud", tmp_path / "gateway.yaml.audit.jsonl")
    rig = Rig(path, lambda check: judged(check, None, "Prometheus is unreachable"))
    rig.interval()
    assert rig.analysis.state == "rolled_back"
    assert "unreachable" in (rig.analysis.reason or "")


def test_pause_holds_and_resume_goes_on_with_a_fresh_interval(started: Path) -> None:
    log = started.with_name("gateway.yaml.audit.jsonl")
    rig = Rig(started, never)
    rig.tick()
    rig.traffic()
    runs.pause(started, "fraud", log)
    rig.pick_up()
    rig.now += 61
    rig.tick()
    rig.now += 61
    rig.tick()
    assert (rig.analysis.state, rig.analysis.step) == ("paused", 1)
    runs.resume(started, "fraud", log)
    rig.pick_up()
    rig.tick()  # the resumed run starts its interval now: the paused traffic is forgotten
    rig.now += 61
    rig.tick()
    assert rig.analysis.step == 1
    cohorts = rig.runtime.models["fraud"].cohorts
    assert cohorts is not None and cohorts.waiting and "0 of 100" in cohorts.waiting
    rig.traffic()
    rig.tick()
    assert (rig.analysis.state, rig.analysis.step) == ("progressing", 2)


def test_abort_rolls_back_and_the_analysis_stays_still(started: Path) -> None:
    rig = Rig(started, never)
    rig.tick()
    rig.traffic()
    runs.abort(started, "fraud", started.with_name("gateway.yaml.audit.jsonl"))
    # The gateway has not reloaded yet: its decision must not overwrite the abort.
    rig.now += 61
    rig.tick()
    assert (rig.analysis.state, rig.weight) == ("rolled_back", 0)
    assert rig.analysis.reason is not None and rig.analysis.reason.startswith("aborted by")
    assert audit(started)[-1]["command"] == "abort"


def test_a_manual_set_weight_pauses_the_run_and_says_so(started: Path) -> None:
    log = started.with_name("gateway.yaml.audit.jsonl")
    rig = Rig(started, never)
    rig.tick()
    entry = commands.set_weight(started, "fraud", 30, log)
    assert "paused now at step 1" in entry["run"]
    rig.pick_up()
    rig.traffic()
    rig.now += 61
    rig.tick()
    assert (rig.analysis.state, rig.weight) == ("paused", 30)
    assert "manual set-weight (30%)" in (rig.analysis.reason or "")


def test_a_manual_rollback_ends_the_run(started: Path) -> None:
    entry = commands.rollback(started, "fraud", started.with_name("gateway.yaml.audit.jsonl"))
    assert "ended it (rolled_back)" in entry["run"]
    assert (Rig(started, never).analysis.state, Rig(started, never).weight) == ("rolled_back", 0)


def test_a_restarted_gateway_resumes_at_the_step_in_the_file(started: Path) -> None:
    rig = Rig(started, never)
    rig.interval()
    assert rig.analysis.step == 2
    restarted = Rig(started, never)  # a new process: nothing in memory but the file
    restarted.now = 5.0
    restarted.interval()
    assert (restarted.analysis.step, restarted.weight) == (3, 100)
    assert [r["command"] for r in audit(started)].count("analysis-step") == 2


def test_the_last_step_at_100_is_judged_against_the_primarys_last_scores(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(run="        state: progressing\n        step: 3\n"))
    rig = Rig(path, never)
    # At 100 % the primary serves nothing; a reference from an earlier interval is used.
    cohorts = rig.runtime.models["fraud"].cohorts
    assert cohorts is not None
    rig.traffic()
    cohorts.take()  # the earlier interval, in which the primary still served
    rig.tick()
    cohorts.canary.requests += 150
    for score in np.random.default_rng(1).beta(1, 30, 150):
        cohorts.canary.answered(0.01, [float(score)])
    rig.now += 61
    rig.tick()
    assert rig.analysis.state == "promoted"


def test_a_check_without_figures_fails() -> None:
    check = CheckSettings(name="latency_p99_ms", max=100)
    result = judged(check, None, "no canary answers in the interval")
    assert not result.ok and "no canary answers" in result.describe()
