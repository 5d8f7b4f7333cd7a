"""``gateway rollout start|pause|resume|abort``: exit codes, the file untouched on refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import MODELS

from gateway.cli import main

ANALYSIS = """      analysis:
        steps: [5, 25, 50, 100]   # percent
        interval_seconds: 60
        checks:
          - {name: error_rate, max: 0.01}
"""


def write(tmp_path: Path, analysis: str = ANALYSIS) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"""# routing
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary:
      name: fraud-v2
      url: http://127.0.0.1:8002
      weight: 0   # percent
{analysis}""")
    return path


def rollout(path: Path, *args: str) -> int:
    return main(["rollout", "--config", str(path), *args])


def records(path: Path) -> list[dict[str, object]]:
    log = path.with_name("gateway.yaml.audit.jsonl")
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_start_sets_step_one_and_its_weight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    assert rollout(path, "start", "fraud") == 0
    text = path.read_text()
    assert "weight: 5   # percent" in text and "state: progressing" in text and "step: 1" in text
    assert "steps: [5, 25, 50, 100]   # percent" in text
    assert records(path)[-1]["after"] == {
        "weight": 5,
        "state": "progressing",
        "step": 1,
        "failed_checks": 0,
    }
    assert "start fraud" in capsys.readouterr().out


def test_start_without_analysis_exits_1_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, analysis="")
    before = path.read_bytes()
    assert rollout(path, "start", "fraud") == 1
    assert "has no canary.analysis" in capsys.readouterr().err
    assert path.read_bytes() == before and records(path) == []


def test_start_during_a_run_exits_1_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    assert rollout(path, "start", "fraud") == 0
    before = path.read_bytes()
    assert rollout(path, "start", "fraud") == 1
    assert "already in progress (state progressing, step 1)" in capsys.readouterr().err
    assert rollout(path, "pause", "fraud") == 0
    paused = path.read_bytes()
    assert rollout(path, "start", "fraud") == 1
    assert path.read_bytes() == paused != before
    assert len(records(path)) == 2


def test_pause_resume_abort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    assert rollout(path, "pause", "fraud") == 1  # nothing to pause
    assert "no rollout of 'fraud' is in progress" in capsys.readouterr().err
    assert rollout(path, "start", "fraud") == 0
    assert rollout(path, "resume", "fraud") == 1  # not paused
    assert rollout(path, "pause", "fraud") == 0
    assert "state: paused" in path.read_text() and "reason: paused by" in path.read_text()
    assert rollout(path, "resume", "fraud") == 0
    assert "state: progressing" in path.read_text() and "reason" not in path.read_text()
    assert rollout(path, "abort", "fraud") == 0
    text = path.read_text()
    assert "state: rolled_back" in text and "weight: 0   # percent" in text and "aborted by" in text
    assert rollout(path, "abort", "fraud") == 1
    assert [r["command"] for r in records(path)] == ["start", "pause", "resume", "abort"]
    assert rollout(path, "start", "fraud") == 0  # a new run after a rolled-back one


def test_unknown_model_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    before = path.read_bytes()
    assert rollout(path, "start", "nope") == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_manual_set_weight_during_a_run_pauses_it_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    rollout(path, "start", "fraud")
    capsys.readouterr()
    assert rollout(path, "set-weight", "fraud", "40") == 0
    out = capsys.readouterr().out
    assert "note: the automated rollout was progressing; it is paused now at step 1" in out
    assert "state: paused" in path.read_text()
    assert "paused" in str(records(path)[-1]["run"])


def test_manual_promote_during_a_run_ends_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    rollout(path, "start", "fraud")
    assert rollout(path, "promote", "fraud") == 0
    assert "ended it (promoted)" in capsys.readouterr().out
    assert "state: promoted" in path.read_text()


def test_status_shows_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    rollout(path, "start", "fraud")
    capsys.readouterr()
    assert rollout(path, "status", "fraud", "--gateway-url", "") == 0
    out = capsys.readouterr().out
    assert "rollout  progressing  step 1 of 4  weight 5%  steps [5, 25, 50, 100]" in out
    assert "failed checks 0 of 2" in out
