"""The degradation ladder under load: SIGKILL the primary at a steady open-loop rate.

    python -m loadtest.ladder_figures [--rate 200] [--before 5] [--after 5]

Starts a real ``gateway model-server`` (fraud-v1) and a real ``gateway serve`` in front of
it with the fallback model configured, drives OIP v2 requests at ``--rate`` req/s with
the open-loop generator (latency from each request's intended send time), SIGKILLs the
model server after ``--before`` seconds, and keeps the load on for ``--after`` seconds.
A poller watches ``/admin/status`` every few milliseconds to time the breaker opening.

Prints JSON: latency p50/p99 of the requests served by the fallback rung (and of those
served by the primary, for comparison), the time from the kill to the breaker opening,
and the count of client-visible errors (anything but a 200).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.contracts.card import load_card
from loadtest import generator
from loadtest.payloads import load_rows, v2_payloads
from loadtest.processes import ROOT, Proc, free_port, gateway_command
from loadtest.stats import summary

TOKEN = "ladder-figures"


def _config(folder: Path, upstream: str, consecutive: int) -> Path:
    fallback = ROOT / "models" / "fraud-fallback"
    sha256 = json.loads((fallback / "model-card.json").read_text())["artifact"]["sha256"]
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 0.0}}
models:
  fraud:
    card: {ROOT / "models" / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 1000}}
    breaker: {{consecutive_failures: {consecutive}, reset_timeout_seconds: 60}}
    timeouts: {{total_ms: 1000, per_try_ms: 300}}
    fallback: {{card: {fallback}, sha256: {sha256}}}
    default_response: {{score: 0.05}}
"""
    )
    return path


async def _watch_breaker(
    url: str, stop: asyncio.Event, opened: list[float], clock: Any
) -> None:  # fmt: skip
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(f"{url}/admin/status", headers=headers) as response:
                    doc = await response.json()
                state = doc["models"]["fraud"]["primary"]["breaker"]["state"]
                if state != "closed" and not opened:
                    opened.append(clock())
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.002)


async def _drive(args: argparse.Namespace, gateway_url: str, server: Proc) -> dict[str, Any]:
    card = load_card(ROOT / "models" / "fraud-v1")
    payloads = v2_payloads(load_rows(limit=2000), card)
    clock = time.perf_counter
    stop = asyncio.Event()
    opened: list[float] = []
    killed: list[float] = []

    async def kill_later() -> None:
        await asyncio.sleep(args.before)
        server.signal(signal.SIGKILL)
        killed.append(clock())

    watcher = asyncio.create_task(_watch_breaker(gateway_url, stop, opened, clock))
    killer = asyncio.create_task(kill_later())
    start = clock()
    records = await generator.run(
        gateway_url, payloads, args.rate, args.before + args.after, clock=clock
    )
    stop.set()
    await asyncio.gather(watcher, killer)
    kill_at = killed[0] - start
    by_variant: dict[str, list[float]] = {}
    for record in records:
        if record.status == 200 and record.variant:
            by_variant.setdefault(record.variant, []).append(record.latency * 1000)
    errors = [r for r in records if r.status != 200]
    after_kill = [r for r in records if r.intended >= kill_at]
    return {
        "rate_per_second": args.rate,
        "requests": len(records),
        "breaker_rule": f"{args.consecutive} consecutive failures",
        "client_visible_errors": len(errors),
        "error_statuses": sorted({r.status for r in errors}),
        "kill_to_breaker_open_ms": round((opened[0] - killed[0]) * 1000, 1) if opened else None,
        "after_kill_variants": sorted({r.variant or "?" for r in after_kill}),
        "fallback_latency_ms": {
            k: round(v, 2) for k, v in summary(by_variant.get("fallback", [])).items()
        },
        "fallback_requests": len(by_variant.get("fallback", [])),
        "primary_latency_ms": {
            k: round(v, 2) for k, v in summary(by_variant.get("primary", [])).items()
        },
        "primary_requests": len(by_variant.get("primary", [])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--before", type=float, default=5.0, help="seconds before the kill")
    parser.add_argument("--after", type=float, default=5.0, help="seconds after the kill")
    parser.add_argument("--consecutive", type=int, default=5, help="breaker threshold")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ladder-figures-"))
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    env = {**os.environ, "XDG_CACHE_HOME": str(folder), "GATEWAY_ADMIN_TOKEN": TOKEN}
    config = _config(folder, upstream, args.consecutive)
    server = Proc(
        "model-server",
        gateway_command("model-server", str(ROOT / "models" / "fraud-v1"), "--port",
                        str(upstream_port)),
        f"{upstream}/v2/health/ready", folder / "model-server.log", env,
    )  # fmt: skip
    gateway = Proc(
        "gateway",
        gateway_command("--log-level", "WARNING", "serve", "--config", str(config), "--port",
                        str(gateway_port)),
        f"{gateway_url}/v2/health/ready", folder / "gateway.log", env,
    )  # fmt: skip
    try:
        server.start()
        gateway.start()
        report = asyncio.run(_drive(args, gateway_url, server))
        report["logs"] = str(folder)
        print(json.dumps(report, indent=2))
    finally:
        gateway.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
