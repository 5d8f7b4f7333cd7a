"""``python -m loadtest bench``: the gateway side by side with its baselines, as ratios.

Upstreams: nginx answering a fixed OIP body (so the proxy is the bottleneck) and the real
``gateway model-server``. In front of each: nothing (direct), nginx ``proxy_pass``, the
bare aiohttp proxy of ``loadtest/baselines``, and the gateway (v2 passthrough with
validation, tracing and metrics) at 100% and at the default 10% sampling. The server
under test runs on core 0, the load on core 1. Figures: ``wrk`` throughput at 32 and 64
connections, CPU seconds per 1,000 requests and peak RSS of the server under test, and
open-loop latency percentiles at fixed rates. The report goes to ``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.contracts.card import load_card
from loadtest import generator
from loadtest.payloads import load_rows, v2_payloads
from loadtest.processes import ROOT, Proc, free_port, gateway_command, pinned
from loadtest.stats import summary

RESULTS = ROOT / "loadtest" / "results"
SERVER_CORE, LOAD_CORE = 0, 1


def ensure_tools() -> None:
    """Install Debian's wrk and nginx when missing (the bench's only system packages)."""
    missing = [p for p, exe in (("wrk", "wrk"), ("nginx-light", "nginx")) if not shutil.which(exe)]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def nginx(workdir: Path, name: str, port: int, location: str) -> Proc:
    conf = workdir / f"{name}.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {workdir}/{name}.pid; error_log {workdir}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {workdir}/{name}-body;
  upstream backend {{ server 127.0.0.1:1; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }}
}}
""")
    return Proc(
        name, pinned(["nginx", "-c", str(conf)], SERVER_CORE), None, workdir / f"{name}.log"
    )


def static_location(body: str) -> str:
    escaped = body.replace("'", "\\'")
    return f"default_type application/json; return 200 '{escaped}';"


def proxy_location(upstream_port: int) -> str:
    return (f"proxy_pass http://127.0.0.1:{upstream_port}; proxy_http_version 1.1; "
            'proxy_set_header Connection "";')  # fmt: skip


def wrk(url: str, body: bytes, connections: int, seconds: float, workdir: Path) -> float:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    out = subprocess.run(
        pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url], LOAD_CORE),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error answers under wrk:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(match.group(1))


@dataclass
class Target:
    name: str
    url: str  # full infer URL
    measured: Proc | None  # the process whose CPU and RSS are reported


def measure(
    target: Target, body: bytes, payloads: list[Any], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    cpu_before = target.measured.cpu_seconds() if target.measured else 0.0
    rps32 = wrk(target.url, body, 32, args.seconds, workdir)
    if target.measured:
        used = target.measured.cpu_seconds() - cpu_before
        figures["cpu_seconds_per_1000"] = round(used / (rps32 * args.seconds) * 1000, 4)
    figures["rps_c32"] = round(rps32)
    figures["rps_c64"] = round(wrk(target.url, body, 64, args.seconds, workdir))
    base = target.url.split("/v2/")[0]
    for rate in args.rates:
        records = asyncio.run(generator.run(base, payloads, rate, args.latency_seconds))
        ok = [r.latency * 1000 for r in records if r.status == 200]
        figures[f"latency_ms_at_{rate}"] = {k: round(v, 3) for k, v in summary(ok).items()}
        figures[f"errors_at_{rate}"] = sum(1 for r in records if r.status != 200)
    if target.measured:
        figures["peak_rss_mb"] = round(target.measured.peak_rss_bytes() / 2**20, 1)
    return figures


def gateway_config(workdir: Path, upstream_port: int, sampling: float, name: str) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(
        f"telemetry: {{sampling_ratio: {sampling}, exporter: none}}\n"
        f"models:\n  fraud:\n    card: {ROOT / 'models' / 'fraud-v1'}\n"
        f"    primary: {{name: fraud-v1, url: 'http://127.0.0.1:{upstream_port}'}}\n"
    )
    return path


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    card = load_card(ROOT / "models" / "fraud-v1")
    payloads = v2_payloads(load_rows(limit=500), card)
    body = payloads[0].body
    env_note = "tracing: spans created and sampled; exporter none (export cost excluded)"
    report: dict[str, Any] = {"upstreams": {}, "notes": [env_note]}
    procs: list[Proc] = []

    def start(proc: Proc) -> Proc:
        procs.append(proc)
        return proc.start()

    try:
        model_port = free_port()
        model_server = start(Proc("model-server", pinned(gateway_command(
            "model-server", str(ROOT / "models" / "fraud-v1"), "--port", str(model_port)), LOAD_CORE),
            f"http://127.0.0.1:{model_port}/v2/health/ready", workdir / "model-server.log"))  # fmt: skip
        # The static upstream answers what the model server answers, fixed.
        with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{model_port}/v2/models/fraud/infer", data=body,
            headers={"Content-Type": "application/json"})) as answer:  # fmt: skip
            static_body = answer.read().decode()
        static_port = free_port()
        static = start(nginx(workdir, "static", static_port, static_location(static_body)))
        upstreams: dict[str, tuple[int, Proc]] = {
            "static-nginx": (static_port, static),
            "model-server": (model_port, model_server),
        }
        for upstream_name, (upstream_port, upstream_proc) in upstreams.items():
            targets = [
                Target(
                    "direct",
                    f"http://127.0.0.1:{upstream_port}/v2/models/fraud/infer",
                    upstream_proc,
                )
            ]
            proxy_port, bare_port = free_port(), free_port()
            nginx_proxy = start(
                nginx(workdir, f"proxy-{upstream_name}", proxy_port, proxy_location(upstream_port))
            )
            targets.append(
                Target(
                    "nginx-proxy",
                    f"http://127.0.0.1:{proxy_port}/v2/models/fraud/infer",
                    nginx_proxy,
                )
            )
            bare = start(Proc("bare", pinned([*gateway_command()[:1], "-m", "loadtest.baselines.bare_proxy",
                f"http://127.0.0.1:{upstream_port}", "--port", str(bare_port)], SERVER_CORE), None,
                workdir / "bare.log"))  # fmt: skip
            targets.append(
                Target(
                    "bare-aiohttp-proxy",
                    f"http://127.0.0.1:{bare_port}/v2/models/fraud/infer",
                    bare,
                )
            )
            for sampling, label in (
                (1.0, "gateway-v2-sampled-100"),
                (0.1, "gateway-v2-sampled-10"),
            ):
                port = free_port()
                config = gateway_config(workdir, upstream_port, sampling, label)
                gw = start(Proc(label, pinned(gateway_command("--log-level", "WARNING", "serve", "--config",
                    str(config), "--port", str(port)), SERVER_CORE), f"http://127.0.0.1:{port}/v2/health/live",
                    workdir / f"{label}.log"))  # fmt: skip
                targets.append(Target(label, f"http://127.0.0.1:{port}/v2/models/fraud/infer", gw))
            _wait_ports(targets)
            figures = {t.name: measure(t, body, payloads, args, workdir) for t in targets}
            bare_rps = figures["bare-aiohttp-proxy"]["rps_c32"]
            direct_p50 = figures["direct"].get(f"latency_ms_at_{args.rates[0]}", {}).get("p50")
            for fig in figures.values():
                fig["throughput_vs_bare_proxy"] = round(fig["rps_c32"] / bare_rps, 3)
                p50 = fig.get(f"latency_ms_at_{args.rates[0]}", {}).get("p50")
                if direct_p50 is not None and p50 is not None:
                    fig[f"added_p50_ms_at_{args.rates[0]}"] = round(p50 - direct_p50, 3)
            report["upstreams"][upstream_name] = figures
            for proc in (nginx_proxy, bare, *[t.measured for t in targets[3:] if t.measured]):
                proc.stop()
    finally:
        for proc in reversed(procs):
            proc.stop()
    return report


def _wait_ports(targets: list[Target], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for target in targets:
        port = int(target.url.split(":")[2].split("/")[0])
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target.name} does not listen on {port}")
            time.sleep(0.05)


def markdown(report: dict[str, Any], rate: int) -> str:
    lines = [f"# Benchmark {report['when']}", "", f"Machine: {report['machine']}", ""]
    for upstream, figures in report["upstreams"].items():
        lines += [f"## Upstream: {upstream}", "",
                  f"| target | req/s c32 | req/s c64 | x bare proxy | CPU s / 1k req | p50 ms @{rate} | p99 ms @{rate} | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, f in figures.items():
            lat = f.get(f"latency_ms_at_{rate}", {})
            lines.append(f"| {name} | {f['rps_c32']} | {f['rps_c64']} | {f['throughput_vs_bare_proxy']} | "
                         f"{f.get('cpu_seconds_per_1000', '')} | {lat.get('p50', '')} | {lat.get('p99', '')} | "
                         f"{f.get('peak_rss_mb', '')} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run length (default 10)")
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="open-loop run length per rate"
    )
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[500, 1000, 2000], help="open-loop rates"
    )


def main(args: argparse.Namespace) -> int:
    report = run_bench(args)
    report["when"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["machine"] = (
        f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpus()} cores, Python {platform.python_version()}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-latest.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "bench-latest.md").write_text(markdown(report, args.rates[0]))
    print(markdown(report, args.rates[0]))
    return 0


def _cpus() -> int:
    return os.cpu_count() or 1
