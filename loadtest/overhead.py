"""Added latency of the gateway over calling the model server directly, in one run.

    python -m loadtest.overhead [--requests 3000] [--model-dir models/fraud-v1]

Starts a real ``gateway model-server`` and a real ``gateway serve`` in front of it (one
worker each), then sends the same single-row OIP infer alternately to each, one request
at a time, so both series see the same machine noise. Reports p50/p90/p99 of each and
their differences as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from loadtest.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _body(model_dir: Path) -> bytes:
    return json.dumps(sample_infer_request(load_card(model_dir))).encode()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99)}


async def _measure(direct: str, via: str, body: bytes, requests: int) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    series: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):  # warm both paths and their connection pools
            for url in (direct, via):
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
        for _ in range(requests):
            for name, url in (("direct", direct), ("gateway", via)):
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{name} answered {r.status}")
                series[name].append(time.perf_counter() - started)
    direct_p, gateway_p = _percentiles(series["direct"]), _percentiles(series["gateway"])
    return {
        "requests_each": requests,
        "direct": direct_p,
        "gateway": gateway_p,
        "added": {k: round(gateway_p[k] - direct_p[k], 3) for k in direct_p},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests to each target")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "fraud-v1")
    parser.add_argument("--sampling-ratio", type=float, default=0.1)
    args = parser.parse_args()

    upstream_port, gateway_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="overhead-"))
    config = folder / "gateway.yaml"
    config.write_text(
        f"telemetry: {{sampling_ratio: {args.sampling_ratio}}}\n"
        f"models:\n  fraud:\n    card: {args.model_dir.resolve()}\n"
        f"    primary: {{name: fraud-v1, url: 'http://127.0.0.1:{upstream_port}'}}\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(folder)}
    gw = [sys.executable, "-m", "gateway"]
    procs = [
        subprocess.Popen([*gw, "model-server", str(args.model_dir), "--port", str(upstream_port)], env=env),
        subprocess.Popen([*gw, "--log-level", "WARNING", "serve", "--config", str(config), "--port", str(gateway_port)], env=env),
    ]  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{upstream_port}/v2/health/ready")
        _wait(f"http://127.0.0.1:{gateway_port}/v2/health/ready")
        report = asyncio.run(
            _measure(
                f"http://127.0.0.1:{upstream_port}/v2/models/fraud/infer",
                f"http://127.0.0.1:{gateway_port}/v2/models/fraud/infer",
                _body(args.model_dir),
                args.requests,
            )
        )
        report["sampling_ratio"] = args.sampling_ratio
        print(json.dumps(report, indent=2))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
