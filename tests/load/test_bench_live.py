"""v1 with live lookups, coalescing on and off: configs, store calls per request, verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.settings.loader import ConfigError, parse_config
from loadtest import bench_live
from loadtest.bench_live import Arm, arm_configs, arm_figures, config, markdown
from loadtest.bench_modes import parse_metrics
from loadtest.bench_targets import live_verdict
from loadtest.processes import Proc
from loadtest.wrk import WrkResult

UPSTREAM, FEAST = "http://127.0.0.1:9001", "http://127.0.0.1:6566"


def test_the_arms_differ_only_in_coalescing(tmp_path: Path) -> None:
    on, off = config(UPSTREAM, FEAST, True), config(UPSTREAM, FEAST, False)
    assert "coalesce: {enabled: true, window_ms: 1.0, max_entities: 64}" in on
    assert on.replace("enabled: true", "enabled: false") == off
    assert "coalesce" not in config(UPSTREAM, FEAST, None)
    try:
        settings = parse_config(on, tmp_path / "gateway.yaml").settings
    except ConfigError as exc:  # the gateway does not know the key yet: the mode says so
        pytest.skip(f"the gateway refuses the coalesce key: {exc}")
    store = settings.feature_store
    assert store is not None and store.url == FEAST
    assert settings.models["fraud"].features.on_missing == "unavailable"


def test_an_arm_whose_config_is_refused_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuses_the_key(path: Path) -> str | None:
        return "feature_store.coalesce: unknown key" if "coalesce" in path.read_text() else None

    monkeypatch.setattr(bench_live, "refusal", refuses_the_key)
    ready, unavailable = arm_configs(tmp_path, UPSTREAM, FEAST)
    assert set(unavailable) == {"on"} and "unknown key" in unavailable["on"]
    path, note = ready["off"]  # without the key: no coalescing either, and labelled so
    assert "coalesce" not in path.read_text() and note.startswith("no coalesce key")
    monkeypatch.setattr(bench_live, "refusal", lambda path: "models.fraud: broken")
    ready, unavailable = arm_configs(tmp_path, UPSTREAM, FEAST)
    assert ready == {} and set(unavailable) == {"on", "off"}
    monkeypatch.setattr(bench_live, "refusal", lambda path: None)
    ready, unavailable = arm_configs(tmp_path, UPSTREAM, FEAST)
    assert unavailable == {} and ready["off"][1].startswith("coalesce: {enabled: false")


def _metrics(store: int, live: int, cache: int = 0, timeouts: int = 0) -> str:
    return f"""# TYPE gateway_feature_store_requests counter
gateway_feature_store_requests_total{{outcome="ok"}} {store}
gateway_feature_store_requests_total{{outcome="feature_store_timeout"}} {timeouts}
# TYPE gateway_feature_values_served counter
gateway_feature_values_served_total{{model="fraud",source="live"}} {live}
gateway_feature_values_served_total{{model="fraud",source="cache"}} {cache}
"""


def _arm(*rounds: WrkResult) -> Arm:
    return Arm("on", "coalesce: {...}", Proc("x", [], None, Path("x.log")), "http://gw",
               list(rounds), cpu=1.0, feast_cpu=0.5)  # fmt: skip


def test_store_calls_per_request_are_the_counters_delta_over_the_answers() -> None:
    arm = _arm(WrkResult(0, 1000, 0, seconds=1.0), WrkResult(0, 1200, 200, seconds=1.0))
    before = parse_metrics(_metrics(store=50, live=400))
    figures = arm_figures(arm, before, parse_metrics(_metrics(store=650, live=8400)))
    assert figures["answered"] == 2000 and figures["store_calls"] == 600
    assert figures["store_calls_per_request"] == 0.3
    assert figures["rps_c32"] == 1000 and figures["rps_c32_rounds"] == [1000, 1000]
    assert figures["client_failures"]["failed"] == 200
    assert figures["cpu_seconds_per_1000"] == 0.5 and figures["problems"] == []
    degraded = arm_figures(
        arm, before, parse_metrics(_metrics(store=650, live=8000, cache=400, timeouts=9))
    )
    assert degraded["problems"] == [
        "feature values not all live: {'live': 7600, 'cache': 400, 'defaults': 0}"
    ]
    assert degraded["store_outcomes"] == {"feature_store_timeout": 9, "ok": 600}


def _live(on: dict[str, Any], off: dict[str, Any], ratio: float | None) -> dict[str, Any]:
    live = {"upstream": "static-nginx", "connections": 32, "rounds": 3, "seconds": 5.0,
            "arms": {"on": on, "off": off}}  # fmt: skip
    if ratio is not None:
        live["throughput_on_over_off"] = ratio
    return live


def _measured(failed: int = 0, problems: list[str] | None = None) -> dict[str, Any]:
    return {"config": "c", "rps_c32": 1000, "rps_c32_rounds": [1000], "store_calls_per_request": 1,
            "client_failures": {"requests": 10000, "failed": failed, "kinds": {}},
            "feature_values": {"live": 1}, "cpu_seconds_per_1000": 1,
            "feast_cpu_seconds_per_1000": 1, "problems": problems or []}  # fmt: skip


def test_the_coalescing_verdict() -> None:
    assert live_verdict(_live(_measured(), _measured(), 1.5), 0.1).status == "met"
    assert live_verdict(_live(_measured(), _measured(), 1.49), 0.1).status == "missed"
    unavailable = live_verdict(_live({"unavailable": "refused"}, _measured(), None), 0.1)
    assert unavailable.status == "unavailable" and "on: refused" in unavailable.measured
    assert live_verdict(_live(_measured(failed=500), _measured(), 2.0), 0.1).status == "missed"
    not_live = live_verdict(_live(_measured(problems=["not all live"]), _measured(), 2.0), 0.1)
    assert not_live.status == "missed" and "not all live" in not_live.measured


def test_the_section_shows_both_arms_or_why_one_is_missing() -> None:
    text = "\n".join(markdown(_live({"unavailable": "refused"}, _measured(), None)))
    assert "| on | unavailable: refused |" in text
    assert "Throughput on / off: unavailable." in text
    assert "| off | c | 1000 | [1000] | 0 of 10000 failed | 1 |" in text
