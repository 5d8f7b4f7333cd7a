"""The result files are rendered from their JSON only, and there is one current soak verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest import bench_render
from loadtest.bench_render import (
    BENCH,
    RESULTS,
    SOAK,
    markdown,
    render,
    report_upstreams,
    save_bench,
    save_soak,
)
from loadtest.bench_targets import as_json, evaluate
from loadtest.soak import MB, rss_growth


@pytest.mark.parametrize("name", [BENCH, SOAK])
def test_the_committed_markdown_is_its_json_rendered(name: str) -> None:
    report = json.loads((RESULTS / f"{name}.json").read_text())
    assert markdown(report) == (RESULTS / f"{name}.md").read_text()


@pytest.mark.parametrize("name", [BENCH, SOAK])
def test_the_committed_verdicts_are_the_rules_applied_to_the_committed_figures(name: str) -> None:
    report = json.loads((RESULTS / f"{name}.json").read_text())
    assert report["targets"] == as_json(evaluate(report, report_upstreams(report)))


def test_the_bench_and_the_soak_report_the_same_soak() -> None:
    bench = json.loads((RESULTS / f"{BENCH}.json").read_text())
    soak = json.loads((RESULTS / f"{SOAK}.json").read_text())
    assert bench["soak"] == soak["soak"]


def _soak(growth_end_mb: int, when: str) -> dict[str, Any]:
    return {"upstream": "static-nginx", "rate": 1000.0, "seconds": 300.0,
            "warmup_seconds": 10.0, "requests": 300000, "achieved_rate": 999.0, "errors": 0,
            "warmup_errors": 0, "latency_ms": {"p50": 1.0, "p99": 5.0}, "when": when,
            "rss": rss_growth([100 * MB, growth_end_mb * MB])}  # fmt: skip


def _bench(when: str) -> dict[str, Any]:
    return {"kind": "bench", "when": when, "machine": "m", "settings": {"rates": [500]},
            "upstreams": {}}  # fmt: skip


def _soak_doc(soak: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "soak", "when": soak["when"], "machine": "m", "upstreams": {}, "soak": soak}


def _verdict(path: Path) -> str:
    (row,) = [r for r in json.loads(path.read_text())["targets"] if r["target"].startswith("soak")]
    return str(row["by_upstream"]["static-nginx"]["status"])


def test_a_bench_without_a_soak_carries_the_latest_soak_over(tmp_path: Path) -> None:
    bench_render.write(_soak_doc(_soak(102, "t1")), SOAK, tmp_path)
    text = save_bench(_bench("t2"), tmp_path)
    saved = json.loads((tmp_path / f"{BENCH}.json").read_text())
    assert saved["soak"]["when"] == "t1" and _verdict(tmp_path / f"{BENCH}.json") == "met"
    assert "Measured t1 by a separate run" in text
    assert (tmp_path / f"{BENCH}.md").read_text() == text


def test_a_bench_with_a_soak_writes_it_to_the_soak_file_too(tmp_path: Path) -> None:
    bench_render.write(_soak_doc(_soak(102, "t1")), SOAK, tmp_path)
    save_bench({**_bench("t2"), "soak": _soak(109, "t2")}, tmp_path)
    assert _verdict(tmp_path / f"{SOAK}.json") == _verdict(tmp_path / f"{BENCH}.json") == "missed"
    assert "separate run" not in (tmp_path / f"{BENCH}.md").read_text()


def test_a_soak_alone_updates_the_benchs_soak(tmp_path: Path) -> None:
    save_bench({**_bench("t1"), "soak": _soak(109, "t1")}, tmp_path)
    save_soak(_soak_doc(_soak(101, "t2")), tmp_path)
    bench = json.loads((tmp_path / f"{BENCH}.json").read_text())
    assert bench["when"] == "t1" and bench["soak"]["when"] == "t2"
    assert _verdict(tmp_path / f"{BENCH}.json") == _verdict(tmp_path / f"{SOAK}.json") == "met"
    assert (tmp_path / f"{BENCH}.md").read_text() == markdown(bench)


def test_render_regenerates_the_markdown_and_the_verdicts_from_the_json(tmp_path: Path) -> None:
    path = tmp_path / f"{BENCH}.json"
    report = {**_bench("t1"), "soak": _soak(109, "t1"), "targets": []}  # stale verdicts
    path.write_text(json.dumps(report))
    text = render(path)
    assert (tmp_path / f"{BENCH}.md").read_text() == text == markdown(report)
    assert _verdict(path) == "missed"
