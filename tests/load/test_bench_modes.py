"""The bench's gateway modes: the configs they run and the checks that prove what was measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings.loader import parse_config
from gateway.settings.schema import GatewaySettings
from loadtest.bench_figures import add_comparisons
from loadtest.bench_modes import (
    GATEWAY_MODES,
    NEVER_RESET_SECONDS,
    REFERENCE,
    check_summary,
    gateway_config,
    outcome_counts,
    parse_metrics,
    provenance_check,
    record_problems,
    selected_modes,
    total,
)
from loadtest.bench_render import markdown
from loadtest.generator import Record

UPSTREAM = "http://127.0.0.1:9001"
FEAST = "http://127.0.0.1:6566"
NOWHERE = "http://127.0.0.1:9"


def _settings(mode: str, tmp_path: Path) -> GatewaySettings:
    """The mode's config, loaded as ``gateway serve`` loads it (cards and sha256 checked)."""
    text = gateway_config(GATEWAY_MODES[mode], UPSTREAM, feast_url=FEAST, unreachable_url=NOWHERE)
    return parse_config(text, tmp_path / "gateway.yaml").settings


@pytest.mark.parametrize(
    ("mode", "ratio"), [("gateway-v2-sampled-100", 1.0), ("gateway-v2-sampled-10", 0.1)]
)
def test_v2_passthrough_is_the_model_and_its_upstream_only(
    mode: str, ratio: float, tmp_path: Path
) -> None:
    settings = _settings(mode, tmp_path)
    model = settings.models["fraud"]
    assert settings.telemetry.sampling_ratio == ratio
    assert model.primary.url == UPSTREAM
    assert settings.feature_store is None
    assert model.fallback is None and model.default_response is None and model.shadows == ()


def test_cache_mode_has_a_store_whose_open_breaker_never_resets(tmp_path: Path) -> None:
    settings = _settings("gateway-v1-cache", tmp_path)
    assert settings.feature_store is not None
    assert settings.feature_store.url == FEAST
    assert settings.feature_store.breaker.reset_timeout_seconds == NEVER_RESET_SECONDS
    model = settings.models["fraud"]
    # A cache miss must be an error, never a silent default.
    assert model.features.on_missing == "unavailable"
    assert model.primary.url == UPSTREAM and model.fallback is None
    assert GATEWAY_MODES["gateway-v1-cache"].api == "v1"


def test_fallback_mode_points_the_primary_nowhere_and_has_a_verified_fallback(
    tmp_path: Path,
) -> None:
    settings = _settings("gateway-fallback", tmp_path)
    model = settings.models["fraud"]
    assert model.primary.url == NOWHERE
    assert model.fallback is not None and model.fallback.card.endswith("fraud-fallback")
    assert model.breaker.reset_timeout_seconds == NEVER_RESET_SECONDS
    assert model.default_response is None  # a failing fallback must show as an error


def test_shadow_mode_copies_every_request_to_the_same_upstream(tmp_path: Path) -> None:
    settings = _settings("gateway-v2-shadow-100", tmp_path)
    (shadow,) = settings.models["fraud"].shadows
    assert shadow.url == UPSTREAM and shadow.sample_percent == 100
    assert settings.models["fraud"].primary.url == UPSTREAM


def test_modes_that_need_a_url_refuse_without_it() -> None:
    with pytest.raises(ValueError, match="feature store"):
        gateway_config(GATEWAY_MODES["gateway-v1-cache"], UPSTREAM)
    with pytest.raises(ValueError, match="unreachable"):
        gateway_config(GATEWAY_MODES["gateway-fallback"], UPSTREAM)


def test_the_bare_proxy_and_direct_are_always_selected_in_report_order() -> None:
    # Direct is every added latency's reference, measured in the same rounds.
    assert selected_modes(["gateway-fallback"]) == ["direct", REFERENCE, "gateway-fallback"]
    assert selected_modes(None)[:3] == ["direct", "nginx-proxy", REFERENCE]
    assert len(selected_modes(None)) == 9 and selected_modes(None)[-1] == "gateway-v1-live"
    with pytest.raises(ValueError, match="nope"):
        selected_modes(["nope"])


def _metrics(primary: int, fallback: int, live: int = 0, cache: int = 0, store: int = 0,
             sent: int = 0, dropped: int = 0) -> str:  # fmt: skip
    return f"""# TYPE gateway_served_by counter
gateway_served_by_total{{model="fraud",rung="primary"}} {primary}
gateway_served_by_total{{model="fraud",rung="fallback"}} {fallback}
# TYPE gateway_feature_values_served counter
gateway_feature_values_served_total{{model="fraud",source="live"}} {live}
gateway_feature_values_served_total{{model="fraud",source="cache"}} {cache}
# TYPE gateway_feature_store_requests counter
gateway_feature_store_requests_total{{outcome="ok"}} {store}
# TYPE gateway_shadow_requests counter
gateway_shadow_requests_total{{model="fraud",shadow="s",result="sent"}} {sent}
gateway_shadow_requests_total{{model="fraud",shadow="s",result="dropped"}} {dropped}
"""


def test_metrics_are_summed_over_matching_labels() -> None:
    metrics = parse_metrics(_metrics(primary=3, fallback=4))
    assert total(metrics, "gateway_served_by_total") == 7
    assert total(metrics, "gateway_served_by_total", rung="fallback") == 4
    assert total(metrics, "gateway_served_by_total", rung="default") == 0


def test_outcomes_are_counted_between_scrapes() -> None:
    text = """# TYPE gateway_requests counter
gateway_requests_total{{model="fraud",api="v2",outcome="ok"}} {ok}
gateway_requests_total{{model="fraud",api="v1",outcome="ok"}} 5
gateway_requests_total{{model="fraud",api="v2",outcome="upstream_unavailable"}} {bad}
"""
    before = parse_metrics(text.format(ok=10, bad=2))
    after = parse_metrics(text.format(ok=110, bad=9))
    assert outcome_counts(before, after) == {"ok": 100, "upstream_unavailable": 7}
    assert outcome_counts(after, after) == {}


def test_fallback_check_needs_every_answer_from_the_fallback() -> None:
    mode = GATEWAY_MODES["gateway-fallback"]
    before = parse_metrics(_metrics(primary=0, fallback=10))
    good = parse_metrics(_metrics(primary=0, fallback=1012))
    figures, problems = provenance_check(mode, before, good, answered=1000)
    assert problems == []
    assert figures["answers_by_rung"]["fallback"] == 1002
    _, problems = provenance_check(mode, before, parse_metrics(_metrics(1, 1012)), 1000)
    assert any("other rungs" in p for p in problems)
    # Requests no rung served are errors (counted elsewhere), not another rung's answers.
    failed = parse_metrics(
        _metrics(0, 1012) + 'gateway_served_by_total{model="fraud",rung="none"} 7\n'
    )
    figures, problems = provenance_check(mode, before, failed, 1000)
    assert problems == [] and figures["answers_by_rung"]["none"] == 7
    # Failures are the client's figures: the summary no longer reads rung="none" as them.
    assert check_summary(mode, figures) == "1002 answers by the fallback rung, 0 by others"
    _, problems = provenance_check(mode, before, parse_metrics(_metrics(0, 900)), 1000)
    assert any("fewer than the 1000" in p for p in problems)


def test_cache_check_refuses_live_values_and_store_calls() -> None:
    mode = GATEWAY_MODES["gateway-v1-cache"]
    before = parse_metrics(_metrics(primary=100, fallback=0, live=400, cache=0, store=100))
    after = parse_metrics(_metrics(primary=600, fallback=0, live=400, cache=2000, store=100))
    figures, problems = provenance_check(mode, before, after, answered=500)
    assert problems == []
    assert figures["feature_values"] == {"live": 0, "cache": 2000, "defaults": 0}
    assert "2000 cache, 0 live" in check_summary(mode, figures)
    leaked = parse_metrics(_metrics(primary=600, fallback=0, live=404, cache=1996, store=101))
    _, problems = provenance_check(mode, before, leaked, answered=500)
    assert any("not all from the cache" in p for p in problems)
    assert any("reached the feature store" in p for p in problems)


def test_shadow_check_reports_copies_and_needs_some_sent() -> None:
    mode = GATEWAY_MODES["gateway-v2-shadow-100"]
    before = parse_metrics(_metrics(primary=0, fallback=0))
    figures, problems = provenance_check(
        mode, before, parse_metrics(_metrics(500, 0, sent=120, dropped=380)), answered=500
    )
    assert problems == [] and figures["shadow_copies"]["dropped"] == 380
    _, problems = provenance_check(mode, before, parse_metrics(_metrics(500, 0)), 500)
    assert problems == ["no shadow copy was sent"]


def test_open_loop_answers_must_carry_the_modes_provenance() -> None:
    cache = GATEWAY_MODES["gateway-v1-cache"]
    ok = Record(0.0, 0.001, 200, 0, "primary", "fraud-v1", "cache")
    failed = Record(0.0, 5.0, 0, 0)  # errors are figures of their own, not provenance
    assert record_problems(cache, [ok, failed]) == []
    live = Record(0.0, 0.001, 200, 0, "primary", "fraud-v1", "live")
    (problem,) = record_problems(cache, [ok, live])
    assert "feature_source" in problem and "live" in problem
    fallback = GATEWAY_MODES["gateway-fallback"]
    assert record_problems(fallback, [ok]) == [
        "served_by other than 'fallback:onnx' in answers: ['fraud-v1']"
    ]


def _figures(rps: int, p50: float, p99: float) -> dict[str, object]:
    return {"rps_c32": rps, "latency_ms_at_500": {"p50": p50, "p99": p99}}


def test_ratios_are_to_the_bare_proxy_and_latency_is_added_over_direct() -> None:
    figures = {
        "direct": _figures(9000, 1.0, 3.0),
        REFERENCE: _figures(4000, 1.5, 5.0),
        "gateway-fallback": _figures(5000, 1.2, 4.5),
        "gateway-v2-sampled-10": _figures(3000, 0.9, 2.0),
    }
    add_comparisons(figures, [500])
    assert figures["gateway-fallback"]["throughput_vs_bare_proxy"] == 1.25
    assert figures[REFERENCE]["throughput_vs_bare_proxy"] == 1.0
    assert figures["gateway-fallback"]["added_ms_at_500"] == {"p50": 0.2, "p99": 1.5}
    # Negative added latency is kept as measured (the verdict calls it noise).
    assert figures["gateway-v2-sampled-10"]["added_ms_at_500"] == {"p50": -0.1, "p99": -1.0}
    assert "added_ms_at_500" not in figures["direct"]
    without_direct = {REFERENCE: _figures(4000, 1.5, 5.0), "x": _figures(2000, 2.0, 6.0)}
    add_comparisons(without_direct, [500])
    assert without_direct["x"]["throughput_vs_bare_proxy"] == 0.5
    assert "added_ms_at_500" not in without_direct["x"]


def _failures(failed: int = 0, requests: int = 1000) -> dict[str, object]:
    counts = {
        "requests": requests,
        "failed": failed,
        "kinds": {"non_2xx": failed} if failed else {},
    }
    return {"wrk_c32": counts, "at_500": counts, "total": counts}


def test_the_report_has_the_new_rows_their_checks_and_the_soak() -> None:
    fallback = {**_figures(5000, 1.2, 4.5), "rps_c64": 4900, "throughput_vs_bare_proxy": 1.25,
                "client_failures": _failures(12, 12000), "processes": 1, "rss_mb": 100.0,
                "peak_rss_mb": 101.0,
                "checks": {"answers_by_rung": {"primary": 0, "fallback": 12000}}}  # fmt: skip
    bare = {**_figures(4000, 1.5, 5.0), "rps_c64": 3900, "throughput_vs_bare_proxy": 1.0,
            "client_failures": _failures()}  # fmt: skip
    soak = {"upstream": "static-nginx", "rate": 1000, "seconds": 300, "warmup_seconds": 10,
            "requests": 300000, "achieved_rate": 998.0, "errors": 0, "warmup_errors": 0,
            "latency_ms": {"p50": 1.1, "p99": 4.0}, "peak_rss_mb": 120.0, "when": "now",
            "rss": {"start_mb": 100.0, "end_mb": 101.0, "max_mb": 102.0,
                    "growth_percent": 1.0, "max_growth_percent": 2.0}}  # fmt: skip
    report = {"when": "now", "machine": "m", "soak": soak, "settings": {"rates": [500]},
              "upstreams": {"static-nginx": {REFERENCE: bare,
                                             "gateway-fallback": fallback}}}  # fmt: skip
    text = markdown(report)
    assert (
        "| gateway-fallback | 5000 | 4900 | 1.25 |  | 1.2 | 4.5 | 12 of 12000 (0.10%) | 1 " in text
    )
    assert "- gateway-fallback: 12000 answers by the fallback rung, 0 by others" in text
    assert "## Targets" in text and "| >= 1x | 1.25x met |" in text
    assert "| gateway-fallback client failures | <= 0.1% of requests | 12 of 12000 failed" in text
    assert "## Soak" in text and "| 300000 | 0 | 0 | 100.0 | 101.0 | 102.0 | 1.0 |" in text
    assert "separate run" not in text  # the soak of this very run
