"""`gateway demo` comes up whole, serves both APIs, rides through its parts dying, and stops
every child on SIGTERM.

One stack (real Feast, model servers and gateway processes, on ports moved by a free
``--port-offset``) is shared by the module's tests, in order; the last one stops it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from support import MODELS, wait_http_ok

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.demo.control import request, socket_path
from gateway.demo.ports import DemoPorts
from gateway.demo.processes import port_in_use

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BACK_WITHIN_SECONDS = 15.0
INSTANCE = {"customer_id": "c-0042", "amount": 120.5, "merchant_category": "grocery",
            "hour": 14, "is_foreign": False}  # fmt: skip


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    ports: DemoPorts
    workdir: Path
    console: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def pid(self, part: str) -> int:
        parts = request(socket_path(self.workdir), {"action": "status"})["parts"]
        return int(next(p["pid"] for p in parts if p["part"] == part))

    def status(self, part: str) -> dict[str, Any]:
        parts = request(socket_path(self.workdir), {"action": "status"})["parts"]
        found: dict[str, Any] = next(p for p in parts if p["part"] == part)
        return found

    def wait_running(self, part: str) -> dict[str, Any]:
        """The part's status once it is ``running`` (its health probe runs every 0.2 s)."""
        deadline = time.monotonic() + 5.0
        while (status := self.status(part))["state"] != "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        return status

    def said(self, words: str) -> list[str]:
        """The supervisor's console lines that contain ``words``."""
        return [line for line in self.console.read_text().splitlines() if words in line]

    def demo_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gateway", "demo", "--workdir", str(self.workdir)]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)


def free_offset() -> int:
    """A port offset whose five demo ports are all free now."""
    for _ in range(50):
        offset = random.randrange(10_000, 50_000)
        if not any(port_in_use("127.0.0.1", p) for p in DemoPorts.shifted(offset).all()):
            return offset
    raise RuntimeError("no free port offset found")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("demo")
    console = folder / "console.log"
    offset = free_offset()
    with console.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--workdir", str(folder / "wd"),
             "--port-offset", str(offset)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    ports = DemoPorts.shifted(offset)
    try:
        wait_http_ok(f"http://127.0.0.1:{ports.gateway}/v2/health/ready", 240, process)
        # The control socket opens as the sample requests are printed, just after.
        deadline = time.monotonic() + 10
        while "The demo stack is up" not in console.read_text():
            assert time.monotonic() < deadline, console.read_text()
            time.sleep(0.05)
        yield Stack(process, ports, folder / "wd", console)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def predict(stack: Stack) -> httpx.Response:
    return httpx.post(
        f"{stack.base}/v1/models/fraud:predict", json={"instances": [INSTANCE]}, timeout=5.0
    )


def provenance(answer: httpx.Response) -> tuple[str, str, str, str]:
    """(variant, served by, degraded, feature source) from the headers of a 200."""
    assert answer.status_code == 200, answer.text
    headers = answer.headers
    return (
        headers["x-gateway-variant"],
        headers["x-gateway-served-by"],
        headers["x-gateway-degraded"],
        headers["x-gateway-feature-source"],
    )


LIVE = ("primary", "fraud-v1", "false", "live")


def ride_through(
    stack: Stack, healthy: Callable[[tuple[str, str, str, str]], bool]
) -> tuple[float, list[tuple[str, str, str, str]]]:
    """Predict every 0.2 s (each answer must be a 200) until ``healthy`` holds again;
    return the seconds that took and the degraded provenances seen on the way."""
    started = time.monotonic()
    degraded = []
    while time.monotonic() - started < BACK_WITHIN_SECONDS + 10:
        seen = provenance(predict(stack))
        if healthy(seen):
            return time.monotonic() - started, degraded
        degraded.append(seen)
        time.sleep(0.2)
    pytest.fail(f"not healthy again after {BACK_WITHIN_SECONDS + 10} s; saw {degraded[-3:]}")


def test_demo_serves_both_apis(stack: Stack) -> None:
    card = load_card(MODELS / "fraud-v1")
    v2 = httpx.post(f"{stack.base}/v2/models/fraud/infer", json=sample_infer_request(card, "d-1"))
    assert v2.status_code == 200, v2.text
    assert v2.json()["id"] == "d-1"
    assert v2.headers["x-gateway-served-by"] == "fraud-v1"

    # Features come from the demo's Feast; the client sends the key and request fields.
    # (A cold Feast may miss the first lookups' 200 ms budget on a busy machine.)
    ride_through(stack, lambda seen: seen == LIVE)
    v1 = predict(stack)
    assert provenance(v1) == LIVE
    assert 0.0 <= v1.json()["predictions"][0]["score"] <= 1.0
    assert v1.json()["provenance"]["features"][0]["feature_source"] == "live"
    for port in stack.ports.models.values():
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
    feast = httpx.post(
        f"http://127.0.0.1:{stack.ports.feast}/get-online-features",
        json={"features": ["customer_stats:txn_count_7d"], "entities": {"customer_id": ["c-0042"]}},
    )
    assert feast.status_code == 200


def test_feast_killed_serves_cached_features_until_it_is_back(stack: Stack) -> None:
    # kill -9 of gunicorn's master alone, the harder case than the whole group: its worker
    # lives on, orphaned, answering on the port the restarted Feast must bind.
    master = stack.pid("feast")
    workers = psutil.Process(master).children()
    assert workers, "feast runs gunicorn: the master has a worker"
    os.kill(master, signal.SIGKILL)
    started = time.monotonic()
    # The demo takes the orphan down with its master (SIGKILL to the whole group).
    _, orphans = psutil.wait_procs(workers, timeout=5.0)
    assert orphans == [], "the orphaned worker still runs"
    _, degraded = ride_through(stack, lambda seen: seen == LIVE)
    took = time.monotonic() - started
    print(f"\nfeast: kill -9 of gunicorn's master to live answers again: {took:.1f} s")
    stack.wait_running("feast")
    print(stack.said("feast is back")[-1])
    assert took < BACK_WITHIN_SECONDS
    assert ("primary", "fraud-v1", "true", "cache") in degraded
    assert stack.status("feast")["restarts"] == 1
    assert stack.said("feast died (killed by SIGKILL)")


def test_feast_worker_killed_is_replaced_by_gunicorn(stack: Stack) -> None:
    master = stack.pid("feast")
    (worker,) = psutil.Process(master).children()
    worker.kill()
    took, _ = ride_through(stack, lambda seen: seen == LIVE)
    print(f"\nfeast: kill -9 of its gunicorn worker to live answers again: {took:.1f} s")
    assert took < BACK_WITHIN_SECONDS
    # No restart of the part: gunicorn forked a new worker.
    assert stack.status("feast") == {
        "part": "feast",
        "state": "running",
        "pid": master,
        "restarts": 1,
    }
    assert [w.pid for w in psutil.Process(master).children()] != [worker.pid]


def test_primary_killed_serves_the_fallback_until_it_is_back(stack: Stack) -> None:
    primary = stack.pid("fraud-v1")
    os.kill(primary, signal.SIGKILL)
    took, degraded = ride_through(stack, lambda seen: seen == LIVE)
    print(f"\nfraud-v1 (primary): kill -9 to live answers from it again: {took:.1f} s")
    stack.wait_running("fraud-v1")
    print(stack.said("fraud-v1 is back")[-1])  # the part; the gateway's breaker then retries it
    assert took < BACK_WITHIN_SECONDS
    assert ("fallback", "fallback:onnx", "true", "none") in degraded
    assert stack.pid("fraud-v1") != primary
    assert "fraud-v1 died (killed by SIGKILL)" in stack.console.read_text()


def test_fault_stall_then_heal_feast(stack: Stack) -> None:
    stalled = stack.demo_cli("fault", "stall", "feast")
    assert stalled.returncode == 0, stalled.stderr
    assert "feast: stalled (SIGSTOP" in stalled.stdout
    assert stack.status("feast")["state"] == "stalled"
    for _ in range(3):  # Feast accepts but never answers: lookups time out to the cache
        assert provenance(predict(stack)) == ("primary", "fraud-v1", "true", "cache")
    healed = stack.demo_cli("fault", "heal", "feast")
    assert healed.returncode == 0, healed.stderr
    assert "feast: resumed (SIGCONT" in healed.stdout
    took, _ = ride_through(stack, lambda seen: seen == LIVE)
    print(f"\nfeast: heal of a stall to live answers again: {took:.1f} s")
    assert took < BACK_WITHIN_SECONDS
    assert stack.wait_running("feast")["restarts"] == 1


def test_sigterm_stops_every_child(stack: Stack) -> None:
    pids = {stack.pid(part) for part in ("feast", "fraud-v1", "fraud-v2", "fraud-v3", "gateway")}
    children = {p.pid for p in psutil.Process(stack.process.pid).children(recursive=True)}
    assert pids <= children
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0
    output = stack.console.read_text()
    assert "curl" in output and "fault kill feast" in output
    assert "demo stopped" in output
    assert [pid for pid in children if alive(pid)] == []
    assert [p for p in stack.ports.all() if port_in_use("127.0.0.1", p)] == []
    assert not socket_path(stack.workdir).exists()


def alive(pid: int) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False
