"""The chaos schedule and the chaos figures, on synthetic records and polls (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import chaos
from loadtest.breaker_timeline import FEATURE_STORE, BreakerSample
from loadtest.chaos import ChaosBounds, ChaosSpec, Fired
from loadtest.generator import Record
from loadtest.report import chaos_markdown
from loadtest.scenario import ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"
SPEC = ChaosSpec(seed=3, targets=("feast", "fraud-v1", "fraud-v2"))
# Feast killed at 10 s (dead from 10.1), restarted at 15 s, healthy at 20 s; the primary
# stopped from 30 s to 32 s.
FIRED = [
    Fired(10.0, 10.1, "kill", "feast"),
    Fired(15.0, 20.0, "restart", "feast"),
    Fired(30.0, 30.0, "stop", "fraud-v1"),
    Fired(32.0, 32.0, "cont", "fraud-v1"),
]


def record(t: float, source: str = "live", served_by: str = "fraud-v1", status: int = 200,
           api: str = "v1", latency: float = 0.01) -> Record:  # fmt: skip
    return Record(t, latency, status, 0, "primary", served_by, source, 0.1, api)


def healthy_run() -> list[Record]:
    """Answers every 0.1 s over 40 s: live when Feast is up, fallback while the primary is
    stopped, cache while Feast is down, back a moment after each heal."""
    out = []
    for i in range(400):
        t = i / 10
        feast_down = 10.0 <= t < 20.3
        primary_down = 30.0 <= t < 32.5
        out.append(record(t, "cache" if feast_down else "live",
                          "fallback:onnx" if primary_down else "fraud-v1"))  # fmt: skip
    return out


def test_the_schedule_is_seeded_one_part_at_a_time_within_the_run() -> None:
    planned = chaos.schedule(SPEC, 600)
    assert planned == chaos.schedule(SPEC, 600)
    assert planned != chaos.schedule(SPEC.model_copy(update={"seed": 4}), 600)
    assert {p.target for p in planned} == {"feast", "fraud-v1", "fraud-v2"}
    assert planned[0].at == SPEC.start_after_seconds
    assert planned[-1].at <= 600 - SPEC.end_calm_seconds
    for i in range(0, len(planned), 2):
        first, second = planned[i], planned[i + 1]
        assert (first.action, second.action) in {("kill", "restart"), ("stop", "cont")}
        assert first.target == second.target and first.at < second.at
        if i + 2 < len(planned):  # a calm gap, and a restart's allowance, before the next
            assert planned[i + 2].at >= second.at + SPEC.calm_seconds[0]


def test_the_shipped_soak_draws_its_faults_and_refuses_unknown_targets(tmp_path: Path) -> None:
    soak = load_scenario(SCENARIOS / "chaos-soak.yaml")
    assert soak.stack.feast_recycling and soak.load.api == "mixed"
    assert len(soak.faults) >= 20 and {f.target for f in soak.faults} == {"feast", "fraud-v1", "fraud-v2"}  # fmt: skip
    bad = (SCENARIOS / "chaos-soak.yaml").read_text().replace("[feast, fraud-v1, fraud-v2]", "[feast, fraud-v9]")  # fmt: skip
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ScenarioError, match=r"chaos.targets: \['fraud-v9'\] not in the stack"):
        load_scenario(tmp_path / "bad.yaml")


def test_windows_pair_each_fault_with_its_heal() -> None:
    down = chaos.windows(FIRED)
    assert [(w.target, w.kind, w.down_from, w.down_to, w.healed) for w in down] == [
        ("feast", "kill", 10.1, 15.0, 20.0),
        ("fraud-v1", "stop", 30.0, 32.0, 32.0),
    ]


def test_a_good_run_passes_every_bound() -> None:
    bounds = ChaosBounds()
    polls = [BreakerSample(t / 10, FEATURE_STORE, "closed") for t in range(400)]
    doc = chaos.figures(healthy_run(), FIRED, polls, [(0.0, 50 * 2**20)], bounds)
    results = chaos.verdicts(doc, bounds)
    assert all(ok for ok, _ in results), results
    assert [r["seconds"] for r in doc["recoveries"]] == [0.3, 0.5]
    assert doc["feature_sources_inside_faults"]["cache"] > 0.5
    assert "provenance lies: 0" in "\n".join(chaos_markdown({"chaos": doc}))


def test_an_answer_claiming_a_dead_part_is_a_lie() -> None:
    records = healthy_run()
    records[120] = record(12.0, source="live")  # Feast was dead from 10.1 to 15
    records[310] = record(31.0, served_by="fraud-v1")  # the primary was stopped
    # Sent just before the kill was done: Feast may well have answered it.
    records[100] = record(10.05, source="live")
    doc = chaos.figures(records, FIRED, [], [], ChaosBounds())
    assert [(lie["intended"], lie["target"]) for lie in doc["provenance_lies"]] == [(12.0, "feast"), (31.0, "fraud-v1")]  # fmt: skip
    assert not dict((text[:15], ok) for ok, text in chaos.verdicts(doc, ChaosBounds()))["provenance lies"]  # fmt: skip


def test_each_bound_can_fail() -> None:
    bounds = ChaosBounds()
    records = healthy_run()
    records[5] = record(0.5, status=503)  # one error in 400: 99.75 %
    for i in range(350, 360):  # defaults outside any fault: 10 of ~300 calm v1 answers
        records[i] = record(i / 10, source="defaults")
    for i in range(201, 225):  # live features back 2.5 s after Feast's heal, not 0.3
        records[i] = record(i / 10, source="cache")
    samples = [BreakerSample(1.0, FEATURE_STORE, "closed"), BreakerSample(2.0, FEATURE_STORE, "open"),
               BreakerSample(2.5, FEATURE_STORE, "closed"), BreakerSample(11.0, FEATURE_STORE, "open")]  # fmt: skip
    doc = chaos.figures(records, FIRED, samples, [], bounds)
    failed = [text for ok, text in chaos.verdicts(doc, bounds) if not ok]
    assert [t.split(":")[0].split(" back")[0] for t in failed] == [
        "2xx answers",
        "v1 answers outside faults with live features",
        "store-breaker openings outside a Feast fault",
        "feast",
    ]
    assert doc["spurious_store_breaker_openings"] == [2.0]  # the one at 11 s is Feast's fault


def test_answers_without_store_features_do_not_count_for_the_live_share() -> None:
    v2 = [record(i / 10, source="none", api="v2") for i in range(100)]
    doc = chaos.figures(v2, [], [], [], ChaosBounds())
    assert doc["v1_outside_faults"] == 0
    assert not chaos.verdicts(doc, ChaosBounds())[2][0]  # no v1 answer: not a pass
    fallback = [record(i / 10, source="none", served_by="fallback:onnx") for i in range(10)]
    doc = chaos.figures(healthy_run() + fallback, FIRED, [], [], ChaosBounds())
    assert doc["v1_outside_faults_with_features"] == doc["v1_outside_faults"] - 10
    assert chaos.verdicts(doc, ChaosBounds())[2][0]


def test_a_run_with_no_fault_or_no_store_poll_judges_nothing_and_fails() -> None:
    bounds = ChaosBounds()
    calm = chaos.figures(healthy_run(), [], [], [], bounds)
    assert not dict((t.split(":")[0], ok) for ok, t in chaos.verdicts(calm, bounds))[
        "faults that fired"
    ]
    unwatched = chaos.figures(healthy_run(), FIRED, [], [], bounds)  # Feast faults, no poll
    results = {t.split(":")[0]: ok for ok, t in chaos.verdicts(unwatched, bounds)}
    assert not results["store-breaker openings outside a Feast fault"]
