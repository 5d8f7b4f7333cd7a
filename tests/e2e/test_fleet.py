"""``gateway serve --workers 2`` as one gateway: one scrape counts every worker's requests,
``/admin/status`` names the worker that answered, and a reload (file edit, ``POST
/admin/reload``, SIGHUP to the supervisor) reaches both workers, in place."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import MODELS, ModelServer, free_port, wait_http_ok

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request

pytestmark = pytest.mark.e2e

TOKEN = "fleet-e2e-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
BODY = sample_infer_request(load_card(MODELS / "fraud-v1"), "fleet")
REQUESTS = 240
CONNECTIONS = 8


def write_fleet_config(path: Path, upstream: str, weight: float, watch: bool) -> None:
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 0.0, exporter: none}}
server: {{reload: {{watch: {str(watch).lower()}, interval_ms: 100}}}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 2000}}
    canary: {{name: fraud-v1b, url: "{upstream}", weight: {weight}, timeout_ms: 2000}}
"""
    )


@dataclass
class Fleet:
    process: subprocess.Popen[bytes]
    url: str


@contextlib.contextmanager
def fleet_running(config: Path, **env: str) -> Iterator[Fleet]:
    """``gateway serve --workers 2``; the block must stop it (SIGTERM to the supervisor)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config),
         "--port", str(port), "--workers", "2"],
        env={**os.environ, "GATEWAY_ADMIN_TOKEN": TOKEN, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/v2/health/ready", 30, process)
        yield Fleet(process, url)
    finally:
        if process.poll() is None:  # the test failed before stopping it: stop it cleanly,
            process.send_signal(signal.SIGTERM)  # so its metrics folder is removed
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def stop(fleet: Fleet) -> int:
    fleet.process.send_signal(signal.SIGTERM)
    return fleet.process.wait(timeout=20)


def status(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/admin/status", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def weight(document: dict[str, Any]) -> float:
    value: float = document["models"]["fraud"]["routing"]["canary_weight_percent"]
    return value


def poll_workers(
    url: str, until: Callable[[dict[int, dict[str, Any]]], bool], timeout: float = 15
) -> dict[int, dict[str, Any]]:
    """The latest status of each pid seen, asked over new connections until ``until`` holds."""
    latest: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with httpx.Client(base_url=url) as client:
            document = status(client)
        latest[document["worker"]["pid"]] = document
        if until(latest):
            return latest
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {_summary(latest)}")


def _summary(latest: dict[int, dict[str, Any]]) -> dict[int, Any]:
    return {pid: (d["worker"], weight(d), d["config"]["reload"]) for pid, d in latest.items()}


def all_at(expected: float, pids: set[int] | None = None) -> Callable[[dict[int, Any]], bool]:
    """Both workers (``pids`` when given) report canary weight ``expected``."""

    def check(latest: dict[int, dict[str, Any]]) -> bool:
        current = {pid for pid, d in latest.items() if weight(d) == expected}
        return len(current) == 2 if pids is None else pids <= current

    return check


def connections_to_both_workers(url: str) -> list[tuple[int, httpx.Client]]:
    """``CONNECTIONS`` keep-alive connections, each pinned to the worker that accepted it,
    with both workers among them (the kernel decides who accepts: retry until it is so)."""
    clients: list[tuple[int, httpx.Client]] = []
    for _ in range(60):
        client = httpx.Client(base_url=url, timeout=10)
        clients.append((status(client)["worker"]["pid"], client))
        pids = {pid for pid, _ in clients}
        if len(clients) >= CONNECTIONS and len(pids) == 2:
            # Keep CONNECTIONS, both workers among them.
            chosen = [next(c for c in clients if c[0] == pid) for pid in pids]
            chosen += [c for c in clients if c not in chosen][: CONNECTIONS - 2]
            for c in clients:
                if c not in chosen:
                    c[1].close()
            return chosen
    raise AssertionError(f"connections reached only the workers {pids}")


def send(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        answer = client.post("/v2/models/fraud/infer", json=BODY)
        assert answer.status_code == 200, answer.text


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"{url}/metrics").text
    return {
        sample.name: [*[(s.labels, s.value) for s in family.samples if s.name == sample.name]]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_one_scrape_counts_every_worker_and_a_file_edit_reaches_both(
    model_server: ModelServer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    write_fleet_config(config, model_server.url, weight=0, watch=True)
    metrics_dir = tmp_path / "metrics"  # the operator's choice of folder
    with fleet_running(config, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as fleet:
        clients = connections_to_both_workers(fleet.url)
        share = REQUESTS // CONNECTIONS
        callers = [threading.Thread(target=send, args=(c, share)) for _, c in clients]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        for _, client in clients:
            client.close()

        samples = scrape(fleet.url)  # one scrape, answered by one of the two workers
        counted = sum(value for _, value in samples["gateway_requests_total"])
        assert counted == REQUESTS
        # One breaker state per upstream, labelled as with a single process (no pid).
        assert [labels for labels, _ in samples["gateway_upstream_breaker_state"]] == [
            {"model": "fraud", "upstream": "fraud-v1"},
            {"model": "fraud", "upstream": "fraud-v1b"},
        ]

        seen = poll_workers(fleet.url, lambda latest: len(latest) == 2)
        assert {d["worker"]["workers"] for d in seen.values()} == {2}
        assert sorted(d["worker"]["index"] for d in seen.values()) == [0, 1]

        write_fleet_config(config, model_server.url, weight=30, watch=True)
        poll_workers(fleet.url, all_at(30.0, set(seen)))

        # A worker killed outright: its slot gets a new process, its live gauges go,
        # its counts stay in the sums.
        dead = next(pid for pid, d in seen.items() if d["worker"]["index"] == 0)
        os.kill(dead, signal.SIGKILL)
        replaced = poll_workers(
            fleet.url,
            lambda latest: any(d["worker"]["index"] == 0 and p != dead for p, d in latest.items()),
        )
        newcomer = next(p for p, d in replaced.items() if d["worker"]["index"] == 0 and p != dead)
        assert weight(replaced[newcomer]) == 30.0  # it loaded the edited file
        names = {p.name for p in metrics_dir.iterdir()}
        assert f"gauge_livemax_{dead}.db" not in names
        assert f"counter_{dead}.db" in names
        assert sum(value for _, value in scrape(fleet.url)["gateway_requests_total"]) == REQUESTS

        assert stop(fleet) == 0
    assert list(metrics_dir.iterdir()) == []  # the folder is kept, its files are not


def test_admin_reload_and_sighup_reach_both_workers_in_place(
    model_server: ModelServer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    write_fleet_config(config, model_server.url, weight=0, watch=False)
    with fleet_running(config) as fleet:
        pids = set(poll_workers(fleet.url, lambda latest: len(latest) == 2))

        write_fleet_config(config, model_server.url, weight=20, watch=False)
        answer = httpx.post(f"{fleet.url}/admin/reload", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json()["fleet"]["every_worker_asked_to_reload"] is True
        poll_workers(fleet.url, all_at(20.0, pids))

        write_fleet_config(config, model_server.url, weight=40, watch=False)
        fleet.process.send_signal(signal.SIGHUP)
        latest = poll_workers(fleet.url, all_at(40.0, pids))
        # Reloaded in place: the same two processes, not replacements.
        assert set(latest) == pids
        assert {d["config"]["reload"]["last_trigger"] for d in latest.values()} == {"signal"}
        # One scrape counts both workers' reloads (metrics in a folder of the gateway's own):
        # the admin reload (the answering worker's, then SIGHUP to both: 3) and SIGHUP (2).
        reloads = scrape(fleet.url)["gateway_config_reloads_total"]
        assert reloads == [({"result": "applied"}, 5.0)]
        assert stop(fleet) == 0
