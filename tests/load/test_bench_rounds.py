"""Throughput rounds: the targets take turns, so each sees the same machine weather."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from loadtest import bench_tree, wrk
from loadtest.bench import Target, throughput_rounds
from loadtest.bench_tree import TreeFigures
from loadtest.processes import Proc
from loadtest.wrk import WrkResult


def test_targets_take_turns_for_each_round(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_run(
        url: str, requests: Any, connections: int, seconds: float, *rest: Any
    ) -> WrkResult:
        calls.append(url)
        assert connections == 32 and seconds == 2.0
        return WrkResult(float(len(calls)), len(calls) * 2, 0, seconds=1.0)

    monkeypatch.setattr(wrk, "run", fake_run)
    targets = [Target(name, f"http://{name}", None, [], [("/p", b"{}")]) for name in ("a", "b")]
    args = argparse.Namespace(rounds=3, seconds=2.0)
    rounds = throughput_rounds(targets, args, Path("/tmp"))
    assert calls == ["http://a/p", "http://b/p"] * 3
    assert [r.result.requests_per_second for r in rounds["a"]] == [1.0, 3.0, 5.0]
    assert [r.result.requests_per_second for r in rounds["b"]] == [2.0, 4.0, 6.0]
    assert all(r.cpu_seconds == 0.0 for r in rounds["a"])  # no process measured


def test_a_rounds_cpu_is_the_process_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    spent = iter([10.0, 12.5, 12.5, 16.0])  # the tree's CPU before and after each round

    def fake_tree(pid: int) -> TreeFigures:
        assert pid == 4242
        return TreeFigures(3, next(spent), 0, 0)

    monkeypatch.setattr(bench_tree, "tree", fake_tree)
    monkeypatch.setattr(wrk, "run", lambda *a, **k: WrkResult(1.0, 1, 0, seconds=1.0))
    proc = Proc("nginx", [], None, Path("/tmp/x.log"))
    proc.process = cast(Any, SimpleNamespace(pid=4242))
    target = Target("direct", "http://d", proc, [], [("/p", b"{}")])
    rounds = throughput_rounds([target], argparse.Namespace(rounds=2, seconds=1.0), Path("/tmp"))
    assert [r.cpu_seconds for r in rounds["direct"]] == [2.5, 3.5]
