"""``gateway serve``: the metrics folder of a fleet, and a single process left as it was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import write_config

from gateway import server
from gateway.api import metrics
from gateway.settings import load_config
from gateway.settings.fleet import METRICS_DIR_ENV, SUPERVISOR_ENV, WORKERS_ENV, Fleet


def test_a_fresh_folder_is_made_for_the_run_and_removed_after_it() -> None:
    with server.metrics_directory(None) as made:
        folder = Path(made)
        assert folder.is_dir() and list(folder.iterdir()) == []
        (folder / "counter_7.db").write_bytes(b"x")
    assert not folder.exists()


def test_the_operators_folder_is_kept_but_emptied_of_metric_files_at_start_and_exit(
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "counter_41.db").write_bytes(b"from an earlier run")
    (chosen / "README").write_text("not ours")
    with server.metrics_directory(str(chosen)) as used:
        assert used == str(chosen)
        assert sorted(p.name for p in chosen.iterdir()) == ["README"]
        (chosen / "gauge_livemax_42.db").write_bytes(b"x")
    assert sorted(p.name for p in chosen.iterdir()) == ["README"]


def test_an_operators_folder_that_does_not_exist_yet_is_created(tmp_path: Path) -> None:
    with server.metrics_directory(str(tmp_path / "a" / "b")) as used:
        assert Path(used).is_dir()


def test_one_worker_runs_the_app_in_process_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (METRICS_DIR_ENV, WORKERS_ENV, SUPERVISOR_ENV):
        monkeypatch.delenv(name, raising=False)
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(server, "settle_heap", lambda: None)
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    server.serve(config, "127.0.0.1", 8080, workers=1)
    [(app, options)] = calls
    assert not isinstance(app, str) and "workers" not in options
    assert not {METRICS_DIR_ENV, WORKERS_ENV, SUPERVISOR_ENV} & set(os.environ)
    # /metrics renders the app's own registry: no folder is read per scrape.
    assert metrics.routes(Fleet()) is metrics.ROUTES
