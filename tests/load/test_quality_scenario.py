"""The harness's silent-corruption pieces, without processes: the corrupt/heal faults and
variants in a scenario, the data-quality poll's samples and the verdicts read from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.generator import Record
from loadtest.quality_watch import (
    QualitySample,
    first_reaching,
    highest_psi,
    mitigation_seconds,
    sample_from_status,
    worst,
)
from loadtest.report import evaluate, markdown, phase_figures, quality_figures
from loadtest.runner import scaled
from loadtest.scenario import ScenarioError, card_auc, load_scenario

SCENARIO = """
name: q
stack:
  feast: true
  gateway: "on_critical: {var:policy}"
load:
  phases:
    - {name: healthy, seconds: 10, rate: 10}
    - {name: corrupted, seconds: 10, rate: 10}
    - {name: recovered, seconds: 10, rate: 10}
faults:
  - {at: 10, action: corrupt, target: feast, feature: "stats:avg", factor: 100}
  - {at: 20, action: heal, target: feast}
data_quality: {model: fraud}
expect:
  max_4xx: 0
  detect:
    - {input: avg, status: critical, after: corrupt, within_seconds: 5}
    - {input: avg, status: ok, after: heal, within_seconds: 5}
  quality_status:
    - {phase: healthy, max: ok}
variants:
  flag: {vars: {policy: flag}}
  fallback:
    vars: {policy: fallback}
    expect:
      auc:
        - {phase: corrupted, min: 0.9, skip_seconds: 2}
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    out = tmp_path / "q.yaml"
    out.write_text(SCENARIO)
    return out


def status_doc(avg: str, psi: float | None = 0.01, active: bool = False) -> dict[str, object]:
    return {"models": {"fraud": {"data_quality": {
        "mitigation": {"active": active, "reason": None},
        "inputs": {"avg": {"status": avg, "psi": psi}, "hour": {"status": "ok", "psi": 0.02}},
        "score": {"status": "ok", "psi": 0.03},
    }}}}  # fmt: skip


def samples(critical_from: float, ok_from: float) -> list[QualitySample]:
    out = []
    for i in range(60):
        t = i / 2
        bad = critical_from <= t < ok_from
        doc = status_doc("critical" if bad else "ok", 5.0 if bad else 0.01, active=bad)
        sample = sample_from_status(doc, "fraud", t)
        assert sample is not None
        out.append(sample)
    return out


def answers(status: int = 200) -> list[Record]:
    # A perfect ranker: the score follows the label.
    return [
        Record(i / 10, 0.01, status, i % 2, "primary", "fraud-v1", "live", 0.2 + 0.6 * (i % 2))
        for i in range(300)
    ]


def test_a_variant_fills_its_vars_and_adds_its_expectations(path: Path) -> None:
    scenario = load_scenario(path)
    fallback = scenario.with_variant("fallback")
    assert fallback.name == "q/fallback"
    assert fallback.stack.gateway == "on_critical: fallback"
    assert fallback.variants == {}
    assert len(fallback.expect.detect) == 2 and len(fallback.expect.auc) == 1
    assert scenario.with_variant("flag").expect.auc == ()


def test_scaling_keeps_detection_bounds_but_scales_skips(path: Path) -> None:
    half = scaled(load_scenario(path).with_variant("fallback"), 0.5)
    assert half.faults[0].at == 5.0
    assert half.expect.auc[0].skip_seconds == 1.0
    assert half.expect.detect[0].within_seconds == 5  # the gateway's speed, not the run's


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("target: feast, feature", "target: fraud-v1, feature", "needs target: feast"),
        ('feature: "stats:avg", factor: 100', "factor: 100", "needs a feature and a factor"),
        ("factor: 100", "factor: .inf", "finite"),
        ("action: heal, target: feast", "action: heal, target: feast, factor: 2", "not heal"),
        ("data_quality: {model: fraud}\n", "", "need a data_quality section"),
        ("after: heal", "after: kill", "no kill fault to time from"),
        ("{var:policy}", "{var:other}", "variants.flag.vars"),
        ("min: 0.9, skip", "at_least_card: nowhere, skip", "no metrics.auc_holdout"),
        ("min: 0.9, skip", "skip", "give either min or at_least_card"),
        ("phase: corrupted, min", "phase: later, min", "unknown phase 'later'"),
    ],
)
def test_bad_quality_scenarios_are_refused_with_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in SCENARIO
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.replace(old, new, 1))
    with pytest.raises(ScenarioError, match=message):
        load_scenario(bad)


def test_a_sample_reads_inputs_score_and_mitigation() -> None:
    sample = sample_from_status(status_doc("warning", 0.15, active=True), "fraud", 1.5)
    assert sample is not None
    assert sample.statuses == {"avg": "warning", "hour": "ok", "score": "ok"}
    assert sample.psi["avg"] == 0.15 and sample.mitigation
    assert sample_from_status(status_doc("ok"), "other-model", 1.0) is None
    assert sample_from_status({"models": {"fraud": {"data_quality": None}}}, "fraud", 1) is None
    assert QualitySample.from_dict(sample.as_dict()) == sample


def test_detection_worst_status_psi_and_mitigation_time() -> None:
    polled = samples(critical_from=12.0, ok_from=23.0)
    assert first_reaching(polled, "avg", "critical", after=10.0) == 2.0
    assert first_reaching(polled, "avg", "warning", after=10.0) == 2.0  # at least warning
    assert first_reaching(polled, "avg", "ok", after=20.0) == 3.0
    assert first_reaching(polled, "hour", "critical", after=0.0) is None
    assert worst(polled, 0.0, 10.0) == ("ok", None)
    assert worst(polled, 10.0, 20.0) == ("critical", "avg")
    assert highest_psi(polled)["avg"] == 5.0
    assert highest_psi(polled, 0.0, 10.0)["avg"] == 0.01
    assert mitigation_seconds(polled, 10.0, 20.0) == pytest.approx(8.0)


def test_quality_verdicts_pass_and_each_can_fail(path: Path) -> None:
    scenario = load_scenario(path).with_variant("fallback")
    faults = list(zip((10.0, 20.0), scenario.faults, strict=True))
    good = evaluate(scenario, answers(), faults, samples(12.0, 23.0))
    assert all(v.ok for v in good), good

    slow = evaluate(scenario, answers(), faults, samples(16.0, 23.0))
    assert [v.text for v in slow if not v.ok] == [
        "avg critical 6.0 s after the corrupt (within 5 s)"
    ]
    never_ok = evaluate(scenario, answers(), faults, samples(12.0, 99.0))
    assert any(not v.ok and "avg ok never after the heal" in v.text for v in never_ok)
    false_alarm = evaluate(scenario, answers(), faults, samples(5.0, 23.0))
    assert any(not v.ok and v.text.startswith("healthy: worst data-quality status critical")
               for v in false_alarm)  # fmt: skip
    no_polls = evaluate(scenario, answers(), faults, [])
    assert any(not v.ok and "over 0 polls" in v.text for v in no_polls)

    rejected = evaluate(scenario, answers(status=400), faults, samples(12.0, 23.0))
    assert any(not v.ok and v.text == "4xx answers: 300 (at most 0)" for v in rejected)
    coin = [Record(r.intended, r.latency, 200, r.label, score=0.5) for r in answers()]
    assert any(not v.ok and v.text.startswith("corrupted: AUC of received scores 0.5000")
               for v in evaluate(scenario, coin, faults, samples(12.0, 23.0)))  # fmt: skip


def test_the_report_has_4xx_per_phase_and_a_data_quality_section(path: Path) -> None:
    scenario = load_scenario(path).with_variant("flag")
    faults = list(zip((10.0, 20.0), scenario.faults, strict=True))
    records = answers()
    records[150] = Record(15.0, 0.01, 400, 0)
    figures = phase_figures(scenario, records)
    assert [figures[p]["4xx"] for p in ("healthy", "corrupted", "recovered")] == [0, 1, 0]
    quality = quality_figures(scenario, faults, samples(12.0, 23.0))
    assert quality["phases"]["corrupted"]["worst_status"] == "critical"
    assert quality["phases"]["healthy"]["highest_psi"]["avg"] == 0.01
    corrupt = quality["after_faults"][0]
    assert corrupt["inputs"]["avg"] == {
        "warning_after": 2.0, "critical_after": 2.0, "ok_again_after": 13.0
    }  # fmt: skip
    doc = {"scenario": "q/flag", "description": "", "passed": True, "faults": [],
           "phases": figures, "verdicts": [], "data_quality": quality}  # fmt: skip
    text = markdown(doc)
    assert "## Data quality" in text and "critical +2.0 s, ok again +13.0 s" in text


def test_card_auc_reads_the_shipped_fallback_card() -> None:
    value = card_auc("fraud-fallback")
    assert value is not None and 0.5 < value < 1.0
    assert card_auc("no-such-model") is None


def test_the_poller_reads_the_gateways_status_until_stopped() -> None:
    import asyncio

    from aiohttp import web
    from local_http import serving

    from loadtest.quality_watch import poll_quality

    async def status(request: web.Request) -> web.Response:
        assert request.headers["authorization"] == "Bearer t0ken"
        return web.json_response(status_doc("critical", 2.5, active=True))

    async def scenario() -> list[QualitySample]:
        app = web.Application()
        app.router.add_get("/admin/status", status)
        async with serving(app) as port:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.25, stop.set)
            return await poll_quality(f"http://127.0.0.1:{port}", "t0ken", "fraud", stop,
                                      start=0.0, interval=0.05, clock=lambda: 1.0)  # fmt: skip

    polled = asyncio.run(scenario())
    assert 3 <= len(polled) <= 6
    assert all(s.statuses["avg"] == "critical" and s.mitigation and s.t == 1.0 for s in polled)
