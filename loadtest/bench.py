"""``python -m loadtest bench``: the gateway side by side with its baselines, as ratios.

Upstreams: nginx answering a fixed OIP body (so the proxy is the bottleneck) and the real
``gateway model-server``. In front of each: nothing (direct), nginx ``proxy_pass``, the
bare aiohttp proxy of ``loadtest/baselines``, and the gateway in several modes (v2
passthrough at 100% and the default 10% trace sampling; v1 with features from the
last-known-good cache; the fallback model alone; v2 with a 100% shadow); then v1 with live
Feast lookups, store-call coalescing on and off. The server under test runs on core 0, the
load on core 1. Figures: successful answers per second under ``wrk`` at 32 and 64
connections, CPU seconds per 1,000 of them and RSS of the server under test's whole
process tree, open-loop latency percentiles at fixed rates with every target (direct
among them) in the same interleaved rounds, and the failures every client counted; then
a soak (RSS over a long steady run). Every ratio is to the bare proxy of the same run; the
report (JSON, and Markdown rendered from it, with a table of the issue's targets) goes to
``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.contracts.card import load_card
from loadtest import (
    bench_latency,
    bench_live,
    bench_prepare,
    bench_render,
    bench_tree,
    quality_cost,
    soak,
    wrk,
)
from loadtest.bench_failures import MAX_FAILED_PERCENT
from loadtest.bench_figures import Round, add_comparisons, target_figures
from loadtest.bench_modes import (
    GATEWAY_MODES,
    LIVE_MODE,
    MODES,
    REFERENCE,
    UPSTREAMS,
    GatewayMode,
    gateway_config,
    outcome_counts,
    selected_modes,
)
from loadtest.bench_render import markdown
from loadtest.generator import Record
from loadtest.payloads import Payload, load_rows, v1_payloads, v2_payloads
from loadtest.processes import ROOT, Proc, free_port, gateway_command, pinned

__all__ = ["Round", "add_comparisons", "markdown"]  # re-exported for the tests and tools

SERVER_CORE, LOAD_CORE = 0, 1
SOAK_MODE = GATEWAY_MODES["gateway-v2-sampled-10"]
EPILOG = "\n".join([
    "modes (--modes MODE ...; default: all, in this order):",
    "  direct                  the upstream itself: always measured, the added latency's reference",
    "  nginx-proxy             nginx proxy_pass in front of it",
    f"  {REFERENCE:23} aiohttp in, aiohttp out: always measured, every ratio's reference",
    *(textwrap.fill(m.what, 88, break_on_hyphens=False, initial_indent=f"  {m.name:23} ",
                    subsequent_indent=" " * 26) for m in GATEWAY_MODES.values()),
    f"  {LIVE_MODE:23} v1 with live Feast lookups, store-call coalescing on and off, once",
    "                          (--live-upstream), the two gateways taking turns",
    "",
    "upstreams (--upstreams ...; default: both): static-nginx (a fixed answer, the proxy is",
    "the bottleneck), model-server (the real gateway model-server).",
    "",
    "The soak runs last (--soak-seconds 0 skips it and keeps the latest soak-latest.json's;",
    "`python -m loadtest soak` runs it alone). --render FILE.json re-renders a report's",
    "Markdown from its JSON and runs nothing.",
    "A quick run: --seconds 2 --latency-seconds 2 --rates 500 --modes gateway-fallback",
    "--upstreams static-nginx --soak-seconds 0",
])  # fmt: skip


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


@dataclass
class Target:
    name: str
    base: str  # http://host:port
    measured: Proc | None  # the process whose tree's CPU and RSS are reported
    payloads: list[Payload]  # the open-loop requests, cycled
    wrk_requests: list[tuple[str, bytes]]  # (path, body) wrk sends, in turn
    mode: GatewayMode | None = None  # a gateway mode: its answers' provenance is checked

    @property
    def url(self) -> str:
        return self.base + self.wrk_requests[0][0]

    def cpu_seconds(self) -> float:
        """The CPU of the measured process's whole tree (0 without one)."""
        return bench_tree.tree(self.measured.pid).cpu_seconds if self.measured else 0.0


@dataclass
class Bench:
    """One run's shared parts: its folder, its processes (all stopped at the end), bodies."""

    workdir: Path
    v2: list[Payload]
    v1: list[Payload]
    procs: list[Proc] = field(default_factory=list)
    feature_repo: Path | None = None

    def start(self, proc: Proc, timeout: float = 60.0) -> Proc:
        self.procs.append(proc)  # before starting: a failed start is stopped too
        return proc.start(timeout)

    def repo(self) -> Path:
        """The demo's feature repo, prepared on first use (feast apply + materialize)."""
        if self.feature_repo is None:
            self.feature_repo = bench_prepare.prepare_feature_repo(self.workdir)
        return self.feature_repo

    def stop_from(self, first: int) -> None:
        """Stop the processes started since ``len(self.procs)`` was ``first``."""
        for proc in reversed(self.procs[first:]):
            proc.stop()


def throughput_rounds(
    targets: list[Target], args: argparse.Namespace, workdir: Path
) -> dict[str, list[Round]]:
    """``args.rounds`` wrk runs at 32 connections per target, the targets taking turns.

    This VM stalls every few seconds (every process alike, the bare proxy too), so one run
    per target can land in a bad patch; in turns, each target's median sees the same ones.
    """
    rounds: dict[str, list[Round]] = {t.name: [] for t in targets}
    for _ in range(args.rounds):
        for target in targets:
            cpu_before = target.cpu_seconds()
            result = wrk.run(target.url, target.wrk_requests, 32, args.seconds,
                             workdir / "post.lua", LOAD_CORE)  # fmt: skip
            rounds[target.name].append(Round(result, target.cpu_seconds() - cpu_before))
    return rounds


def latency_rounds(
    targets: list[Target], args: argparse.Namespace
) -> dict[str, dict[int, list[list[Record]]]]:
    """Per target and rate the records of each interleaved open-loop round."""
    out: dict[str, dict[int, list[list[Record]]]] = {t.name: {} for t in targets}
    each = [bench_latency.LatencyTarget(t.name, t.base, t.payloads) for t in targets]
    seconds = args.latency_seconds / args.latency_rounds
    for rate in args.rates:
        with on_core(LOAD_CORE):  # the generator beside wrk's core, away from the server's
            by_target = asyncio.run(
                bench_latency.interleaved(each, rate, args.latency_rounds, seconds)
            )
        for name, per_round in by_target.items():
            out[name][rate] = per_round
    return out


def measure_upstream(
    bench: Bench, targets: list[Target], args: argparse.Namespace
) -> dict[str, Any]:
    """Every target's figures over one upstream: throughput rounds, wrk at 64 connections
    and latency rounds, the targets taking turns; stops when a mode's provenance fails."""
    before = {t.name: bench_prepare.scrape(t.base) if t.mode else {} for t in targets}
    rounds = throughput_rounds(targets, args, bench.workdir)
    c64 = {t.name: wrk.run(t.url, t.wrk_requests, 64, args.seconds, bench.workdir / "post.lua",
                           LOAD_CORE) for t in targets}  # fmt: skip
    latency = latency_rounds(targets, args)
    figures: dict[str, Any] = {}
    for t in targets:
        tree = bench_tree.tree(t.measured.pid) if t.measured else None
        counters = (before[t.name], bench_prepare.scrape(t.base)) if t.mode else None
        figures[t.name], problems = target_figures(
            t.mode, rounds[t.name], c64[t.name], latency[t.name], tree, counters
        )
        if problems:
            listed = "\n  ".join(problems)
            raise RuntimeError(f"{t.name} did not measure what it is about:\n  {listed}")
    add_comparisons(figures, args.rates)
    return figures


def start_upstreams(bench: Bench) -> dict[str, tuple[int, Proc]]:
    """The model server, and nginx answering what the model server answers, fixed."""
    workdir = bench.workdir
    model_port = free_port()
    model_server = bench.start(Proc("model-server", pinned(gateway_command(
        "model-server", str(ROOT / "models" / "fraud-v1"), "--port", str(model_port)), LOAD_CORE),
        f"http://127.0.0.1:{model_port}/v2/health/ready", workdir / "model-server.log"))  # fmt: skip
    with urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{model_port}/v2/models/fraud/infer", data=bench.v2[0].body,
        headers={"Content-Type": "application/json"})) as answer:  # fmt: skip
        static_body = answer.read().decode()
    static_port = free_port()
    static = bench.start(nginx(workdir, "static", static_port, static_location(static_body)))
    return {"static-nginx": (static_port, static), "model-server": (model_port, model_server)}


def start_gateway(bench: Bench, mode: GatewayMode, upstream_port: int, label: str) -> Target:
    """The gateway in ``mode``, brought into the state the mode measures."""
    upstream = f"http://127.0.0.1:{upstream_port}"
    feast, feast_url = None, None
    if mode.feature_cache:
        feast, feast_url = bench_prepare.start_feast(bench.repo(), bench.workdir,
                                                     lambda p: bench.start(p, 90))  # fmt: skip
        bench_prepare.warm_feast(feast_url, bench.v1)
    unreachable = f"http://127.0.0.1:{free_port()}" if mode.fallback_only else None
    config = bench.workdir / f"{label}.yaml"
    config.write_text(
        gateway_config(mode, upstream, feast_url=feast_url, unreachable_url=unreachable)
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = gateway_command(
        "--log-level", "WARNING", "serve", "--config", str(config), "--port", str(port)
    )  # fmt: skip
    log = bench.workdir / f"{label}.log"
    gw = bench.start(Proc(label, pinned(command, SERVER_CORE), f"{base}/v2/health/live", log))
    if feast is not None:
        bench_prepare.serve_from_cache(base, bench.v1, feast)
    if mode.fallback_only:
        bench_prepare.serve_from_fallback(base, bench.v2)
    if mode.api == "v1":
        # wrk cycles through every entity the cache was warmed with.
        return Target(mode.name, base, gw, bench.v1, [(p.path, p.body) for p in bench.v1], mode)
    return Target(mode.name, base, gw, bench.v2, [(bench.v2[0].path, bench.v2[0].body)], mode)


def start_target(bench: Bench, name: str, upstream: str, port: int, proc: Proc) -> Target:
    fixed = [(bench.v2[0].path, bench.v2[0].body)]
    if name == "direct":
        return Target(name, f"http://127.0.0.1:{port}", proc, bench.v2, fixed)
    if name in GATEWAY_MODES:
        return start_gateway(bench, GATEWAY_MODES[name], port, f"{upstream}-{name}")
    own_port = free_port()
    if name == "nginx-proxy":
        proxy = nginx(bench.workdir, f"proxy-{upstream}", own_port, proxy_location(port))
        started = bench.start(proxy)
    else:
        command = [*gateway_command()[:1], "-m", "loadtest.baselines.bare_proxy",
                   f"http://127.0.0.1:{port}", "--port", str(own_port)]  # fmt: skip
        log = bench.workdir / f"bare-{upstream}.log"
        started = bench.start(Proc("bare", pinned(command, SERVER_CORE), None, log))
    return Target(name, f"http://127.0.0.1:{own_port}", started, bench.v2, fixed)


def new_bench() -> Bench:
    rows = load_rows(limit=500)
    card = load_card(ROOT / "models" / "fraud-v1")
    return Bench(
        Path(tempfile.mkdtemp(prefix="bench-")), v2_payloads(rows, card), v1_payloads(rows)
    )


@contextlib.contextmanager
def on_core(core: int) -> Iterator[None]:
    """Run this thread (the open-loop generator) on ``core`` only, when the machine has it."""
    if core >= _cpus() or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_soak(bench: Bench, settings: soak.SoakSettings, upstream_port: int) -> dict[str, Any]:
    """The soak against a fresh gateway (v2 passthrough, 10% sampling), load on the load core;
    RSS is the gateway's whole process tree's."""
    target = start_gateway(bench, SOAK_MODE, upstream_port, f"soak-{settings.upstream}")
    assert target.measured is not None
    pid = target.measured.pid
    try:
        before = bench_prepare.scrape(target.base)
        with on_core(LOAD_CORE):
            result = asyncio.run(
                soak.drive(target.base, bench.v2, settings, lambda: bench_tree.tree(pid).rss_bytes)
            )
        tree = bench_tree.tree(pid)
        result["peak_rss_mb"] = round(tree.peak_rss_bytes / 2**20, 1)
        result["processes"] = tree.processes
        # Why answers failed, in the gateway's words (warm-up included).
        result["gateway_outcomes"] = outcome_counts(before, bench_prepare.scrape(target.base))
    finally:
        target.measured.stop()
    return result


def run_live(bench: Bench, args: argparse.Namespace, upstream_port: int) -> dict[str, Any]:
    """The live-lookup mode: a real Feast, two gateways (coalescing on and off) in turns."""
    first = len(bench.procs)
    try:
        feast = bench_prepare.start_feast(bench.repo(), bench.workdir,
                                          lambda p: bench.start(p, 90))  # fmt: skip
        bench_prepare.warm_feast(feast[1], bench.v1)
        return bench_live.run(lambda p: bench.start(p), feast, bench.workdir, bench.v1,
                              (args.live_upstream, upstream_port), args.rounds, args.seconds,
                              (SERVER_CORE, LOAD_CORE))  # fmt: skip
    finally:
        bench.stop_from(first)


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    ensure_tools()
    bench = new_bench()
    modes = selected_modes(args.modes)
    per_upstream = [m for m in modes if m != LIVE_MODE]
    env_note = "tracing: spans created and sampled; exporter none (export cost excluded)"
    report: dict[str, Any] = {
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "latency_seconds": args.latency_seconds,
                     "latency_rounds": args.latency_rounds, "rates": args.rates,
                     "modes": modes, "upstreams": args.upstreams,
                     "max_failed_percent": args.max_failed_percent},
        "modes": {m.name: m.what for m in GATEWAY_MODES.values() if m.name in modes},
        "upstreams": {},
        "notes": [env_note, "gateway modes other than v2-sampled-100 run at 10% sampling"],
    }  # fmt: skip
    try:
        upstreams = start_upstreams(bench)
        for upstream_name in args.upstreams:
            upstream_port, upstream_proc = upstreams[upstream_name]
            first = len(bench.procs)
            targets = [start_target(bench, name, upstream_name, upstream_port, upstream_proc)
                       for name in per_upstream]  # fmt: skip
            _wait_ports(targets)
            report["upstreams"][upstream_name] = measure_upstream(bench, targets, args)
            bench.stop_from(first)  # this upstream's proxies, gateways and Feast
        if LIVE_MODE in modes:
            report["live_lookups"] = run_live(bench, args, upstreams[args.live_upstream][0])
        # In process, no upstream: what the data-quality monitors add to a request.
        report["data_quality_monitors"] = quality_cost.measure(rounds=3)
        if args.soak_seconds > 0:
            settings = soak.settings_from(args)
            report["soak"] = run_soak(bench, settings, upstreams[settings.upstream][0])
    finally:
        bench.stop_from(0)
    return report


def _wait_ports(targets: list[Target], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for target in targets:
        port = int(target.base.rsplit(":", 1)[1])
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target.name} does not listen on {port}")
            time.sleep(0.05)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk run length (default 5)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="wrk runs at 32 connections per target, targets taking turns; the median counts"
        " (default 3)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=10.0,
        help="open-loop time per target and rate, over all its rounds (default 10)",
    )
    parser.add_argument(
        "--latency-rounds",
        type=int,
        default=5,
        help="open-loop runs per target and rate, every target (direct too) taking turns"
        " (default 5)",
    )
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[500, 1000, 2000], help="open-loop rates"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, metavar="MODE",
                        help="targets to measure (default: all; see below)")  # fmt: skip
    parser.add_argument("--upstreams", nargs="+", choices=UPSTREAMS, default=list(UPSTREAMS),
                        metavar="UPSTREAM",
                        help="static-nginx and/or model-server (default: both)")  # fmt: skip
    parser.add_argument("--live-upstream", choices=UPSTREAMS, default="static-nginx",
                        help=f"the upstream of {LIVE_MODE} (default static-nginx)")  # fmt: skip
    parser.add_argument(
        "--max-failed-percent",
        type=float,
        default=MAX_FAILED_PERCENT,
        metavar="P",
        help="a figure counts only if at most P%% of its measurement's requests failed at the"
        f" client (default {MAX_FAILED_PERCENT:g})",
    )
    parser.add_argument("--render", type=Path, metavar="FILE.json",
                        help="only re-render FILE.json's Markdown (beside it) from the JSON")  # fmt: skip
    soak.add_arguments(parser, "soak-", 300.0)


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    soak.add_arguments(parser, "", 300.0)


def main(args: argparse.Namespace) -> int:
    if args.render is not None:
        print(bench_render.render(args.render), end="")
        return 0
    if args.latency_rounds < 1 or args.rounds < 1:
        raise SystemExit("loadtest bench: --rounds and --latency-rounds must be at least 1")
    report = run_bench(args)
    bench_render.stamp(report, "bench")
    print(bench_render.save_bench(report), end="")
    return 0


def soak_main(args: argparse.Namespace) -> int:
    """``python -m loadtest soak``: the soak alone, reported in ``soak-latest.{json,md}``
    (and put into ``bench-latest``: one current soak verdict)."""
    if args.soak_seconds <= 0:
        raise SystemExit("loadtest soak: --seconds must be positive")
    ensure_tools()
    bench = new_bench()
    settings = soak.settings_from(args)
    try:
        upstreams = start_upstreams(bench)
        report: dict[str, Any] = {
            "upstreams": {},
            "soak": run_soak(bench, settings, upstreams[settings.upstream][0]),
        }
    finally:
        bench.stop_from(0)
    bench_render.stamp(report, "soak")
    print(bench_render.save_soak(report), end="")
    return 0


def _cpus() -> int:
    return os.cpu_count() or 1
