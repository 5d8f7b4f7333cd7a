"""The real process: ``python -m gateway.modelserver`` over HTTP, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .support import scoring_request


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"traceparent": "00-ab-cd-01"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.e2e
def test_serves_over_http_and_exits_0_on_sigterm(model_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.modelserver", str(model_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _call(f"{base}/v2/health/ready") == (200, {"ready": True}):
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the model server did not become ready"
            time.sleep(0.05)

        assert _call(f"{base}/v2/health/live") == (200, {"live": True})
        status, body = _call(f"{base}/v2/models/fraud/infer", scoring_request(id="e2e"))
        assert status == 200
        assert (body["model_name"], body["model_version"], body["id"]) == ("fraud", "1", "e2e")
        assert sum(body["outputs"][1]["data"]) == pytest.approx(1.0, abs=1e-6)
        stats = _call(f"{base}/_debug/stats")[1]
        assert stats["infer_requests"] == 1
        assert stats["last_headers"]["traceparent"] == "00-ab-cd-01"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
