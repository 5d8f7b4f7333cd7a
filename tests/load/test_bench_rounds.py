"""Throughput rounds: the targets take turns, so each sees the same machine weather."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from loadtest import bench
from loadtest.bench import Target, throughput_rounds
from loadtest.wrk import WrkResult


def test_targets_take_turns_for_each_round(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_run(
        url: str, requests: Any, connections: int, seconds: float, *rest: Any
    ) -> WrkResult:
        calls.append(url)
        assert connections == 32 and seconds == 2.0
        return WrkResult(float(len(calls)), len(calls) * 2, 0, 0)

    monkeypatch.setattr(bench.wrk, "run", fake_run)
    targets = [Target(name, f"http://{name}", None, [], [("/p", b"{}")]) for name in ("a", "b")]
    args = argparse.Namespace(rounds=3, seconds=2.0)
    rounds = throughput_rounds(targets, args, Path("/tmp"))
    assert calls == ["http://a/p", "http://b/p"] * 3
    assert [r.result.requests_per_second for r in rounds["a"]] == [1.0, 3.0, 5.0]
    assert [r.result.requests_per_second for r in rounds["b"]] == [2.0, 4.0, 6.0]
    assert all(r.cpu_seconds == 0.0 for r in rounds["a"])  # no process measured
