"""The soak's pure parts: its load windows, RSS growth and report section."""

from __future__ import annotations

import argparse
import os

import pytest

from loadtest.bench import on_core
from loadtest.soak import MB, add_arguments, markdown, rss_growth, settings_from, windows


def test_windows_cover_the_soak_exactly() -> None:
    assert windows(300, 5) == [5.0] * 60
    assert windows(12, 5) == [5, 5, 2]
    assert windows(0, 5) == []
    with pytest.raises(ValueError):
        windows(10, 0)


def test_growth_is_end_over_start_and_max_over_start() -> None:
    figures = rss_growth([100 * MB, 130 * MB, 103 * MB])
    assert figures == {
        "start_mb": 100.0,
        "end_mb": 103.0,
        "max_mb": 130.0,
        "growth_percent": 3.0,
        "max_growth_percent": 30.0,
    }
    assert rss_growth([200 * MB, 190 * MB])["growth_percent"] == -5.0
    with pytest.raises(ValueError):
        rss_growth([])


def test_bench_and_soak_options_fill_the_same_settings() -> None:
    bench = argparse.ArgumentParser()
    add_arguments(bench, "soak-", 300.0)
    assert settings_from(bench.parse_args([])).seconds == 300.0
    quick = settings_from(
        bench.parse_args(["--soak-seconds", "0", "--soak-upstream", "model-server"])
    )
    assert quick.seconds == 0 and quick.upstream == "model-server" and quick.rate == 1000
    alone = argparse.ArgumentParser()
    add_arguments(alone, "", 300.0)
    settings = settings_from(alone.parse_args(["--seconds", "20", "--rate", "500"]))
    assert (settings.seconds, settings.rate, settings.interval_seconds) == (20, 500, 5)


def test_soak_section_shows_growth_and_errors() -> None:
    soak = {"upstream": "static-nginx", "rate": 1000.0, "seconds": 300.0, "warmup_seconds": 10.0,
            "requests": 299000, "achieved_rate": 996.7, "errors": 2, "warmup_errors": 1,
            "latency_ms": {"p50": 1.2, "p99": 6.5}, "peak_rss_mb": 131.0,
            "rss": rss_growth([100 * MB, 104 * MB])}  # fmt: skip
    text = "\n".join(markdown(soak))
    assert "1000 req/s open loop for 300 s after a 10 s warm-up (996.7 req/s achieved)" in text
    assert "| 299000 | 2 | 1 | 100.0 | 104.0 | 104.0 | 4.0 | 4.0 | 1.2 | 6.5 | 131.0 |" in text


def test_gateway_outcomes_are_listed_when_known() -> None:
    soak = {"upstream": "static-nginx", "rate": 1000.0, "seconds": 20.0, "warmup_seconds": 10.0,
            "requests": 20000, "achieved_rate": 990.0, "errors": 3, "warmup_errors": 0,
            "latency_ms": {}, "rss": rss_growth([MB]),
            "gateway_outcomes": {"ok": 29997, "upstream_unavailable": 3}}  # fmt: skip
    assert "The gateway's outcomes (warm-up included): ok 29997, upstream_unavailable 3." in (
        markdown(soak)
    )


def test_the_load_runs_on_the_load_core_only_while_asked() -> None:
    before = os.sched_getaffinity(0)
    with on_core(0):
        assert os.sched_getaffinity(0) == {0}
    assert os.sched_getaffinity(0) == before
    with on_core(10_000):  # a core the machine does not have: left alone
        assert os.sched_getaffinity(0) == before
