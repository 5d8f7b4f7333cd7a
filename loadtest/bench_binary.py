"""JSON against binary tensors through the gateway, for one batch size, in one run.

    python -m loadtest.bench_binary [--rows 64] [--seconds 4] [--rounds 3] [--connections 8]

Starts a real ``gateway model-server`` and a real ``gateway serve`` in front of it (JSON
to the upstream, the gateway's default), then sends one ``--rows``-row OIP request over
and over from ``--connections`` keep-alive connections (a closed loop), in rounds that
alternate between the two forms so both see the same machine noise: JSON tensors with a
JSON answer, and Triton's binary tensor data in and out (tritonclient's default). Reports,
per form, requests per second, the request body size and the gateway's CPU time per
request (its process's user + system time over the round, the cost that does not depend
on the client), and binary's figures over JSON's as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.contracts.card import load_card
from loadtest.payloads import load_rows, v2_batch_payload
from loadtest.processes import Proc, free_port, gateway_command

ROOT = Path(__file__).resolve().parents[1]
FORMS = ("json", "binary")


async def _closed_loop(
    url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int
) -> int:
    """Answers (all must be 200) within ``seconds`` from ``connections`` busy clients."""
    stop = time.monotonic() + seconds
    done = 0
    connector = aiohttp.TCPConnector(limit=connections)
    # No Accept-Encoding (aiohttp sends gzip by default): the codecs' cost, not gzip's.
    async with aiohttp.ClientSession(
        connector=connector, skip_auto_headers=["Accept-Encoding"]
    ) as session:

        async def client() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
                    if response.headers.get("x-gateway-variant") != "primary":
                        raise RuntimeError("an answer not served by the primary")
                done += 1

        await asyncio.gather(*(client() for _ in range(connections)))
    return done


def run(rows: int, seconds: float, rounds: int, connections: int, workdir: Path) -> dict[str, Any]:
    card = load_card(ROOT / "models" / "fraud-v1")
    batch = load_rows(limit=rows)
    payloads = {form: v2_batch_payload(batch, card, binary=form == "binary") for form in FORMS}
    model_port, gateway_port = free_port(), free_port()
    config = workdir / "gateway.yaml"
    config.write_text(
        f"""
telemetry: {{sampling_ratio: 0.1, exporter: none}}
models:
  fraud:
    card: {ROOT / "models" / "fraud-v1"}
    max_batch_size: {max(rows, 1)}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:{model_port}", timeout_ms: 5000}}
    timeouts: {{total_ms: 5000, per_try_ms: 5000}}
"""
    )
    model = Proc("model-server", gateway_command("model-server", str(ROOT / "models" / "fraud-v1"),
                 "--port", str(model_port)), f"http://127.0.0.1:{model_port}/v2/health/ready",
                 workdir / "model-server.log").start()  # fmt: skip
    gateway = Proc("gateway", gateway_command("serve", "--config", str(config), "--port",
                   str(gateway_port)), f"http://127.0.0.1:{gateway_port}/v2/health/ready",
                   workdir / "gateway.log").start()  # fmt: skip
    url = f"http://127.0.0.1:{gateway_port}/v2/models/fraud/infer"
    results: dict[str, dict[str, list[float]]] = {f: {"rps": [], "cpu_ms": []} for f in FORMS}
    try:
        for form in FORMS:  # warm both paths up
            payload, headers = payloads[form]
            asyncio.run(_closed_loop(url, payload.body, headers, 0.5, connections))
        for _ in range(rounds):
            for form in FORMS:
                payload, headers = payloads[form]
                cpu = gateway.cpu_seconds()
                answered = asyncio.run(
                    _closed_loop(url, payload.body, headers, seconds, connections)
                )
                used = gateway.cpu_seconds() - cpu
                results[form]["rps"].append(round(answered / seconds, 1))
                results[form]["cpu_ms"].append(round(1000 * used / max(answered, 1), 4))
    finally:
        gateway.stop()
        model.stop()
    report: dict[str, Any] = {"rows": rows, "seconds": seconds, "rounds": rounds,
                              "connections": connections, "forms": {}}  # fmt: skip
    for form in FORMS:
        report["forms"][form] = {
            "body_bytes": len(payloads[form][0].body),
            "requests_per_second": statistics.median(results[form]["rps"]),
            "gateway_cpu_ms_per_request": statistics.median(results[form]["cpu_ms"]),
            "rounds": results[form],
        }
    json_form, binary_form = report["forms"]["json"], report["forms"]["binary"]
    report["binary_over_json"] = {
        "requests_per_second": round(
            binary_form["requests_per_second"] / json_form["requests_per_second"], 3
        ),
        "gateway_cpu_per_request": round(
            binary_form["gateway_cpu_ms_per_request"] / json_form["gateway_cpu_ms_per_request"], 3
        ),
        "body_bytes": round(binary_form["body_bytes"] / json_form["body_bytes"], 3),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_binary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rows", type=int, default=64, help="rows per request (default 64)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per round and form")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-binary-") as folder:
        report = run(args.rows, args.seconds, args.rounds, args.connections, Path(folder))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
