"""The automated rollout end to end: a real gateway, real model servers, a real Prometheus.

A skewed canary (fraud-v1 with ``--fault-mode skew``: valid probabilities, no error) is
rolled back by ``score_psi`` within two intervals of its first failing check; a good one
(fraud-v2) is promoted with one audit record per step; a ``prometheus`` check passes and
fails as its bound says against a Prometheus server scraping the gateway.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port, model_server_running, running

from gateway.rollout import runs
from gateway.settings import load_config
from loadtest.payloads import load_rows, v1_payloads

pytestmark = pytest.mark.e2e
TOKEN = "e2e-rollout-token"
INTERVAL = 2.0


def write_config(folder: Path, primary: str, canary: str, analysis: str) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(f"""# e2e rollout
server: {{reload: {{interval_ms: 100}}}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{primary}", timeout_ms: 2000}}
    canary:
      name: fraud-v2
      url: "{canary}"
      timeout_ms: 2000
      weight: 0
      analysis:
{analysis}""")
    return path


BUILT_IN = f"""        steps: [20, 50, 100]
        interval_seconds: {INTERVAL}
        min_requests: 20
        max_failed_checks: 2
        checks:
          - {{name: error_rate, max: 0.02}}
          - {{name: score_psi, max: 0.5}}
"""


@contextlib.contextmanager
def gateway(path: Path) -> Iterator[GatewayThread]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = TOKEN
    try:
        with GatewayThread(load_config(path), InMemorySpanExporter()) as thread:
            yield thread
    finally:
        del os.environ["GATEWAY_ADMIN_TOKEN"]


@contextlib.contextmanager
def traffic(url: str, rate: float = 150.0, threads: int = 2) -> Iterator[dict[str, int]]:
    """Single-row v1 requests (features in the body) at about ``rate`` per second from each
    thread, riding through the gateway being down (counted as ``unreachable``)."""
    payloads = v1_payloads(load_rows(limit=2000), with_features=True)
    served: dict[str, int] = {}
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                payload = payloads[i % len(payloads)]
                i += 1
                try:
                    answer = client.post(payload.path, content=payload.body,
                                         headers={"content-type": "application/json"})  # fmt: skip
                except httpx.TransportError:  # the gateway is being restarted
                    served["unreachable"] = served.get("unreachable", 0) + 1
                    time.sleep(0.05)
                    continue
                variant = answer.headers.get("x-gateway-variant", str(answer.status_code))
                served[variant] = served.get(variant, 0) + 1
                time.sleep(1 / rate)

    senders = [threading.Thread(target=send, daemon=True) for _ in range(threads)]
    for sender in senders:
        sender.start()
    try:
        yield served
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=10)


def status(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/admin/status", headers={"authorization": f"Bearer {TOKEN}"})
    model: dict[str, Any] = answer.json()["models"]["fraud"]
    return model


def wait_for_state(url: str, states: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = status(url)
        if model["rollout"]["state"] in states:
            return model
        time.sleep(0.1)
    raise AssertionError(f"no state in {states} within {timeout} s: {status(url)['rollout']}")


def audit(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(x) for x in path.with_name(f"{path.name}.audit.jsonl").read_text().splitlines()
    ]


def at(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(record["at"]).timestamp()


def test_a_skewed_canary_is_rolled_back_by_score_psi(tmp_path: Path) -> None:
    with (
        model_server_running() as primary,
        model_server_running("--fault-mode", "skew") as canary,
    ):
        path = write_config(tmp_path, primary.url, canary.url, BUILT_IN)
        with gateway(path) as gw, traffic(gw.url) as served:
            runs.start(path, "fraud", path.with_name("gateway.yaml.audit.jsonl"))
            model = wait_for_state(gw.url, {"rolled_back", "promoted"}, timeout=12 * INTERVAL)
            canary_served_at_rollback = served.get("canary", 0)
    rollout = model["rollout"]
    assert rollout["state"] == "rolled_back" and rollout["weight"] == 0
    assert "score_psi" in rollout["reason"]
    psi = next(c for c in rollout["last_checks"] if c["name"] == "score_psi")
    assert psi["ok"] is False and psi["value"] > 0.5
    records = audit(path)
    commands = [r["command"] for r in records]
    assert commands[-1] == "analysis-rollback" and records[-1]["who"] == runs.ANALYST
    first_failure = next(r for r in records if r["command"].startswith("analysis-") and
                         any(not c["ok"] for c in r["checks"]))  # fmt: skip
    to_zero = at(records[-1]) - at(first_failure)
    assert to_zero <= 2 * INTERVAL, to_zero
    assert served.get("500", 0) == 0 and canary_served_at_rollback > 0
    print(f"skewed canary: weight 0 {to_zero:.2f} s after the first failing check; "
          f"it served {canary_served_at_rollback} requests; {served}")  # fmt: skip


def test_a_good_canary_is_promoted_with_one_audit_record_per_step(tmp_path: Path) -> None:
    with (
        model_server_running() as primary,
        model_server_running(model_dir=MODELS / "fraud-v2") as canary,
    ):
        path = write_config(tmp_path, primary.url, canary.url, BUILT_IN)
        with gateway(path) as gw, traffic(gw.url):
            runs.start(path, "fraud", path.with_name("gateway.yaml.audit.jsonl"))
            model = wait_for_state(gw.url, {"rolled_back", "promoted"}, timeout=15 * INTERVAL)
    assert model["rollout"]["state"] == "promoted", model["rollout"]
    assert model["routing"]["primary"] == "fraud-v2"
    records = audit(path)
    # Two different models' scores over 2 s intervals: score_psi 0.1-0.4, and in about one
    # run in five one interval near 0.9. A failed check within max_failed_checks adds its
    # own record and holds the step; the steps themselves are one record each.
    steps = [r for r in records if r["command"] != "analysis-failed-checks"]
    assert [r["command"] for r in steps] == [
        "start", "analysis-step", "analysis-step", "analysis-promote"
    ]  # fmt: skip
    assert [r["after"].get("weight") for r in steps] == [20, 50, 100, 0]
    assert all(c["ok"] for r in steps[1:] for c in r["checks"])
    assert len(records) - len(steps) < 2  # max_failed_checks


PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)  # fmt: skip


@contextlib.contextmanager
def prometheus_scraping(target_port: int, folder: Path) -> Iterator[str]:
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: gateway
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
""")
    command = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/-/ready", timeout=30):
        yield url


def wait_for_series(prom: str, query: str, timeout: float = 20) -> None:
    """Until Prometheus has scraped the gateway (an empty answer would fail the check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{prom}/api/v1/query", params={"query": query}).json()
        if answer["data"]["result"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus did not scrape {query} within {timeout} s")


def test_a_prometheus_check_passes_and_fails_as_its_bound_says(tmp_path: Path) -> None:
    """The query reads the canary weight the gateway exports: 10 passes ``max: 30``, the
    next step's 50 fails it, and one failed check rolls back."""
    assert PROMETHEUS is not None, "the prometheus binary is missing: `make tools` installs it"
    with model_server_running() as primary:
        path = tmp_path / "gateway.yaml"
        port = free_port()
        path.write_text("")
        with contextlib.ExitStack() as stack:
            prom = stack.enter_context(prometheus_scraping(port, tmp_path))
            analysis = f"""        steps: [10, 50]
        interval_seconds: 3
        min_requests: 0
        max_failed_checks: 1
        checks:
          - {{name: prometheus, query: 'sum(gateway_canary_weight_percent{{model="fraud"}})', max: 30, url: "{prom}"}}
"""
            write_config(tmp_path, primary.url, primary.url, analysis)
            thread = GatewayThread.__new__(GatewayThread)
            os.environ["GATEWAY_ADMIN_TOKEN"] = TOKEN
            try:
                thread.__init__(load_config(path), InMemorySpanExporter())  # type: ignore[misc]
                thread.port, thread.url = port, f"http://127.0.0.1:{port}"
                thread.server.config.port = port
                with thread as gw:
                    wait_for_series(prom, 'gateway_canary_weight_percent{model="fraud"}')
                    runs.start(path, "fraud", path.with_name("gateway.yaml.audit.jsonl"))
                    model = wait_for_state(gw.url, {"rolled_back", "promoted"}, timeout=30)
            finally:
                del os.environ["GATEWAY_ADMIN_TOKEN"]
    records = audit(path)
    assert [r["command"] for r in records] == ["start", "analysis-step", "analysis-rollback"]
    passed, failed = records[1]["checks"][0], records[2]["checks"][0]
    assert passed["ok"] is True and passed["value"] == 10
    assert failed["ok"] is False and failed["value"] == 50
    assert model["rollout"]["state"] == "rolled_back"
    assert "prometheus 50 > max 30.0" in model["rollout"]["reason"]


def test_a_gateway_killed_mid_run_resumes_at_the_step_it_was_on(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(tmp_path / "gateway.yaml"),
               "--port", str(port)]  # fmt: skip
    env = {**os.environ, "GATEWAY_ADMIN_TOKEN": TOKEN}
    with (
        model_server_running() as primary,
        model_server_running(model_dir=MODELS / "fraud-v2") as canary,
    ):
        path = write_config(tmp_path, primary.url, canary.url, BUILT_IN)
        audit_log = path.with_name("gateway.yaml.audit.jsonl")
        with traffic(url, threads=1) as served:
            with running(command, f"{url}/v2/health/ready", env=env) as first:
                runs.start(path, "fraud", audit_log)
                deadline = time.monotonic() + 10 * INTERVAL
                while status(url)["rollout"]["step"] != 2:
                    assert time.monotonic() < deadline, status(url)["rollout"]
                    time.sleep(0.05)
                first.kill()  # SIGKILL: no shutdown, nothing written on the way out
                first.wait()
            with running(command, f"{url}/v2/health/ready", env=env):
                resumed = status(url)["rollout"]
                model = wait_for_state(url, {"rolled_back", "promoted"}, timeout=15 * INTERVAL)
    assert (resumed["state"], resumed["step"], resumed["weight"]) == ("progressing", 2, 50)
    assert model["rollout"]["state"] == "promoted", model["rollout"]
    records = audit(path)
    assert [r["command"] for r in records] == [
        "start", "analysis-step", "analysis-step", "analysis-promote"
    ]  # fmt: skip
    assert [r["after"].get("weight") for r in records] == [20, 50, 100, 0]
    assert served.get("500", 0) == 0 and served.get("unreachable", 0) > 0
