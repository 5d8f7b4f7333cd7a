"""The demo's Feast repo: the serve command, and a real apply + materialize + serve."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import free_port, running

from gateway.demo.data import CUSTOMER_FEATURES, customer_stats
from gateway.demo.feature_repo import (
    FeatureRepoError,
    feast_serve_command,
    prepare_feature_repo,
)


def test_serve_command_keeps_one_worker_alive_for_the_whole_run() -> None:
    cmd = feast_serve_command(Path("/srv/repo"), "127.0.0.1", 6566)
    assert cmd[1:4] == ["--chdir", "/srv/repo", "serve"]
    joined = " ".join(cmd)
    assert "--host 127.0.0.1 --port 6566" in joined
    assert "--workers 1 --max-requests 0" in joined
    assert "--no-access-log" in cmd


def test_prepare_refuses_a_folder_without_feature_store_yaml(tmp_path: Path) -> None:
    with pytest.raises(FeatureRepoError, match=r"no feature_store\.yaml"):
        prepare_feature_repo(tmp_path / "repo", source=tmp_path)


@pytest.mark.slow
def test_prepare_reports_feast_errors(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "feature_store.yaml").write_text("project: fraud_demo\nprovider: nowhere\n")
    with pytest.raises(FeatureRepoError, match="feast apply"):
        prepare_feature_repo(tmp_path / "repo", source=source)


def lookup(url: str, customers: list[str]) -> dict[str, Any]:
    body = {
        "features": [f"customer_stats:{name}" for name in CUSTOMER_FEATURES],
        "entities": {"customer_id": customers},
    }
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


@pytest.mark.e2e
def test_prepared_repo_serves_customer_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = prepare_feature_repo(tmp_path / "feature_repo")
    assert (repo / "data" / "online_store.db").is_file()
    # gunicorn puts its control socket under $XDG_RUNTIME_DIR, else under $HOME.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(feast_serve_command(repo, "127.0.0.1", port), f"{base}/health", timeout=60):
        answer = lookup(f"{base}/get-online-features", ["c-0042", "c-9999", "c-nope"])
    columns = dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))
    assert set(columns) == {"customer_id", *CUSTOMER_FEATURES}
    stats = customer_stats().set_index("customer_id")
    for name in CUSTOMER_FEATURES:
        assert columns[name]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
        expected = [stats.loc["c-0042", name].item(), stats.loc["c-9999", name].item(), None]
        assert columns[name]["values"] == expected
