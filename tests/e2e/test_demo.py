"""`gateway demo` comes up whole, serves both APIs, and stops every child on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import MODELS, wait_http_ok

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.demo.processes import port_in_use
from gateway.demo.supervisor import FEAST_PORT, GATEWAY_PORT, MODEL_PORTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PORTS = (FEAST_PORT, *MODEL_PORTS.values(), GATEWAY_PORT)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_demo_serves_and_stops_cleanly(tmp_path: Path) -> None:
    if any(port_in_use("127.0.0.1", p) for p in PORTS):
        pytest.fail(f"the demo's ports {PORTS} must be free for this test")
    console = tmp_path / "console.log"
    with console.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--workdir", str(tmp_path / "demo")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_http_ok(f"http://127.0.0.1:{GATEWAY_PORT}/v2/health/ready", 240, demo)
        base = f"http://127.0.0.1:{GATEWAY_PORT}"
        card = load_card(MODELS / "fraud-v1")
        v2 = httpx.post(f"{base}/v2/models/fraud/infer", json=sample_infer_request(card, "d-1"))
        assert v2.status_code == 200, v2.text
        assert v2.json()["id"] == "d-1"
        assert v2.headers["x-gateway-served-by"] == "fraud-v1"

        # Features come from the demo's Feast; the client sends the key and request fields.
        instance = {"customer_id": "c-0042", "amount": 120.5, "merchant_category": "grocery",
                    "hour": 14, "is_foreign": False}  # fmt: skip
        v1 = httpx.post(f"{base}/v1/models/fraud:predict", json={"instances": [instance]})
        assert v1.status_code == 200, v1.text
        assert 0.0 <= v1.json()["predictions"][0]["score"] <= 1.0
        assert v1.headers["x-gateway-feature-source"] == "live"
        assert v1.json()["provenance"]["features"][0]["feature_source"] == "live"
        for port in MODEL_PORTS.values():
            assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
        feast = httpx.post(
            f"http://127.0.0.1:{FEAST_PORT}/get-online-features",
            json={
                "features": ["customer_stats:txn_count_7d"],
                "entities": {"customer_id": ["c-0042"]},
            },
        )
        assert feast.status_code == 200

        children = descendants(demo.pid)
        assert len(children) >= 5  # feast (and its worker), three model servers, the gateway
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = console.read_text()
    assert "curl" in output and "demo stopped" in output
    assert [pid for pid in children if alive(pid)] == []
    assert [p for p in PORTS if port_in_use("127.0.0.1", p)] == []
