"""`gateway serve` finishes in-flight requests on SIGTERM, then exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import MODELS, free_port, model_server_command, running, wait_http_ok, write_config

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request

pytestmark = pytest.mark.e2e


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    slow = model_server_command(
        MODELS / "fraud-v1", upstream_port, "--fault-mode", "slow", "--fault-delay-ms", "1200"
    )
    config = write_config(tmp_path, upstream)
    with running(slow, f"{upstream}/v2/health/ready"):
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--port", str(gateway_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{gateway_port}"
            wait_http_ok(f"{base}/v2/health/live", 20, gateway)
            body = sample_infer_request(load_card(MODELS / "fraud-v1"), "in-flight")
            answers: list[httpx.Response] = []
            caller = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(f"{base}/v2/models/fraud/infer", json=body, timeout=10)
                )
            )
            caller.start()
            time.sleep(0.4)  # the request is now waiting on the slow upstream
            gateway.send_signal(signal.SIGTERM)
            caller.join(timeout=10)
            assert gateway.wait(timeout=15) == 0
        finally:
            if gateway.poll() is None:
                gateway.kill()
                gateway.wait()
    assert len(answers) == 1
    assert answers[0].status_code == 200
    assert answers[0].json()["id"] == "in-flight"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{gateway_port}/v2/health/live")
