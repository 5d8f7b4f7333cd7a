"""``python -m loadtest bench``: the gateway side by side with its baselines, as ratios.

Upstreams: nginx answering a fixed OIP body (so the proxy is the bottleneck) and the real
``gateway model-server``. In front of each: nothing (direct), nginx ``proxy_pass``, the
bare aiohttp proxy of ``loadtest/baselines``, and the gateway in several modes (v2
passthrough at 100% and the default 10% trace sampling; v1 with features from the
last-known-good cache; the fallback model alone; v2 with a 100% shadow). The server under
test runs on core 0, the load on core 1. Figures: ``wrk`` throughput at 32 and 64
connections, CPU seconds per 1,000 requests and peak RSS of the server under test, and
open-loop latency percentiles at fixed rates; then a soak (RSS over a long steady run).
Every ratio is to the bare proxy of the same run; the report (JSON and Markdown, with a
table of the issue's targets) goes to ``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
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
from loadtest import bench_prepare, bench_targets, generator, quality_cost, soak, wrk
from loadtest.bench_modes import (
    GATEWAY_MODES,
    MODES,
    REFERENCE,
    UPSTREAMS,
    GatewayMode,
    Metrics,
    check_summary,
    gateway_config,
    outcome_counts,
    provenance_check,
    record_problems,
    selected_modes,
)
from loadtest.payloads import Payload, load_rows, v1_payloads, v2_payloads
from loadtest.processes import ROOT, Proc, free_port, gateway_command, pinned
from loadtest.stats import summary

RESULTS = ROOT / "loadtest" / "results"
SERVER_CORE, LOAD_CORE = 0, 1
SOAK_MODE = GATEWAY_MODES["gateway-v2-sampled-10"]
EPILOG = "\n".join([
    "modes (--modes MODE ...; default: all, in this order):",
    "  direct                  the upstream itself",
    "  nginx-proxy             nginx proxy_pass in front of it",
    f"  {REFERENCE:23} aiohttp in, aiohttp out: always measured, every ratio's reference",
    *(textwrap.fill(m.what, 88, break_on_hyphens=False, initial_indent=f"  {m.name:23} ",
                    subsequent_indent=" " * 26) for m in GATEWAY_MODES.values()),
    "",
    "upstreams (--upstreams ...; default: both): static-nginx (a fixed answer, the proxy is",
    "the bottleneck), model-server (the real gateway model-server).",
    "",
    "The soak runs last (--soak-seconds 0 skips it; `python -m loadtest soak` runs it alone).",
    "A quick run: --seconds 2 --latency-seconds 2 --rates 500 --modes gateway-fallback",
    "--upstreams static-nginx --soak-seconds 20",
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
    measured: Proc | None  # the process whose CPU and RSS are reported
    payloads: list[Payload]  # the open-loop requests, cycled
    wrk_requests: list[tuple[str, bytes]]  # (path, body) wrk sends, in turn
    mode: GatewayMode | None = None  # a gateway mode: its answers' provenance is checked

    @property
    def url(self) -> str:
        return self.base + self.wrk_requests[0][0]


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


@dataclass(frozen=True, slots=True)
class Round:
    """One wrk run at 32 connections, and the CPU the measured process spent in it."""

    result: wrk.WrkResult
    cpu_seconds: float


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
            cpu_before = target.measured.cpu_seconds() if target.measured else 0.0
            result = wrk.run(target.url, target.wrk_requests, 32, args.seconds,
                             workdir / "post.lua", LOAD_CORE)  # fmt: skip
            used = target.measured.cpu_seconds() - cpu_before if target.measured else 0.0
            rounds[target.name].append(Round(result, used))
    return rounds


def measure(
    target: Target,
    args: argparse.Namespace,
    workdir: Path,
    rounds: list[Round],
    before: Metrics,
) -> dict[str, Any]:
    """A target's figures: its throughput ``rounds`` (median), wrk at 64 connections,
    open-loop latency per rate, peak RSS, and the provenance check since ``before``."""
    figures: dict[str, Any] = {}
    script = workdir / "post.lua"
    c32 = [r.result for r in rounds]
    if target.measured:
        used = sum(r.cpu_seconds for r in rounds)
        requests = sum(r.requests for r in c32)
        figures["cpu_seconds_per_1000"] = round(used / max(requests, 1) * 1000, 4)
    figures["rps_c32"] = round(statistics.median(r.requests_per_second for r in c32))
    figures["rps_c32_rounds"] = [round(r.requests_per_second) for r in c32]
    c64 = wrk.run(target.url, target.wrk_requests, 64, args.seconds, script, LOAD_CORE)
    figures["rps_c64"] = round(c64.requests_per_second)
    figures["wrk_socket_errors"] = sum(r.socket_errors for r in c32) + c64.socket_errors
    answered = sum(r.requests for r in c32) + c64.requests
    problems: list[str] = []
    for rate in args.rates:
        with on_core(LOAD_CORE):  # the generator beside wrk's core, away from the server's
            records = asyncio.run(
                generator.run(target.base, target.payloads, rate, args.latency_seconds)
            )
        ok = [r.latency * 1000 for r in records if r.status == 200]
        figures[f"latency_ms_at_{rate}"] = {k: round(v, 3) for k, v in summary(ok).items()}
        figures[f"errors_at_{rate}"] = len(records) - len(ok)
        answered += len(ok)
        if target.mode:
            problems += [f"at {rate} req/s: {p}" for p in record_problems(target.mode, records)]
    if target.measured:
        figures["peak_rss_mb"] = round(target.measured.peak_rss_bytes() / 2**20, 1)
    if target.mode:
        checks, found = provenance_check(
            target.mode, before, bench_prepare.scrape(target.base), answered
        )
        figures["checks"] = checks
        problems += found
    if problems:
        listed = "\n  ".join(problems)
        raise RuntimeError(f"{target.name} did not measure what it is about:\n  {listed}")
    return figures


def add_comparisons(figures: dict[str, dict[str, Any]], rates: list[int]) -> None:
    """Throughput over the bare proxy's and, with ``direct`` measured, added latency."""
    bare_rps = figures[REFERENCE]["rps_c32"]
    direct = figures.get("direct")
    for fig in figures.values():
        fig["throughput_vs_bare_proxy"] = round(fig["rps_c32"] / bare_rps, 3)
        if direct is None:
            continue
        for rate in rates:
            ours = fig.get(f"latency_ms_at_{rate}", {})
            theirs = direct.get(f"latency_ms_at_{rate}", {})
            added = {
                p: round(ours[p] - theirs[p], 3)
                for p in ("p50", "p99")
                if p in ours and p in theirs
            }
            if added:
                fig[f"added_ms_at_{rate}"] = added
        if "p50" in fig.get(f"added_ms_at_{rates[0]}", {}):
            fig[f"added_p50_ms_at_{rates[0]}"] = fig[f"added_ms_at_{rates[0]}"]["p50"]


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
    """The soak against a fresh gateway (v2 passthrough, 10% sampling), load on the load core."""
    target = start_gateway(bench, SOAK_MODE, upstream_port, f"soak-{settings.upstream}")
    assert target.measured is not None
    try:
        before = bench_prepare.scrape(target.base)
        with on_core(LOAD_CORE):
            result = asyncio.run(
                soak.drive(target.base, bench.v2, settings, target.measured.rss_bytes)
            )
        result["peak_rss_mb"] = round(target.measured.peak_rss_bytes() / 2**20, 1)
        # Why answers failed, in the gateway's words (warm-up included).
        result["gateway_outcomes"] = outcome_counts(before, bench_prepare.scrape(target.base))
    finally:
        target.measured.stop()
    return result


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    ensure_tools()
    bench = new_bench()
    modes = selected_modes(args.modes)
    env_note = "tracing: spans created and sampled; exporter none (export cost excluded)"
    report: dict[str, Any] = {
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "latency_seconds": args.latency_seconds,
                     "rates": args.rates, "modes": modes, "upstreams": args.upstreams},
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
                       for name in modes]  # fmt: skip
            _wait_ports(targets)
            before = {t.name: bench_prepare.scrape(t.base) if t.mode else {} for t in targets}
            rounds = throughput_rounds(targets, args, bench.workdir)
            figures = {
                t.name: measure(t, args, bench.workdir, rounds[t.name], before[t.name])
                for t in targets
            }
            add_comparisons(figures, args.rates)
            report["upstreams"][upstream_name] = figures
            for proc in bench.procs[first:]:  # this upstream's proxies, gateways and Feast
                proc.stop()
        # In process, no upstream: what the data-quality monitors add to a request.
        report["data_quality_monitors"] = quality_cost.measure(rounds=3)
        if args.soak_seconds > 0:
            settings = soak.settings_from(args)
            report["soak"] = run_soak(bench, settings, upstreams[settings.upstream][0])
    finally:
        for proc in reversed(bench.procs):
            proc.stop()
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


def report_upstreams(report: dict[str, Any]) -> tuple[str, ...]:
    """The upstreams the report has figures for (the soak's when it has nothing else)."""
    names = tuple(report.get("upstreams", {}))
    if not names and report.get("soak"):
        names = (report["soak"]["upstream"],)
    return names


def markdown(report: dict[str, Any], rate: int, title: str = "Benchmark") -> str:
    upstreams = report_upstreams(report)
    lines = [f"# {title} {report['when']}", "", f"Machine: {report['machine']}", ""]
    rows = bench_targets.evaluate(report, upstreams)
    if title != "Benchmark":  # a partial run (the soak alone): only what it measured
        rows = [r for r in rows if any(v.measured for v in r.by_upstream.values())]
    lines += bench_targets.markdown(rows, upstreams)
    for upstream, figures in report["upstreams"].items():
        lines += [f"## Upstream: {upstream}", "",
                  f"| target | req/s c32 | req/s c64 | x bare proxy | CPU s / 1k req | p50 ms @{rate} | p99 ms @{rate} | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, f in figures.items():
            lat = f.get(f"latency_ms_at_{rate}", {})
            lines.append(f"| {name} | {f['rps_c32']} | {f['rps_c64']} | {f['throughput_vs_bare_proxy']} | "
                         f"{f.get('cpu_seconds_per_1000', '')} | {lat.get('p50', '')} | {lat.get('p99', '')} | "
                         f"{f.get('peak_rss_mb', '')} |")  # fmt: skip
        checked = [(n, f["checks"]) for n, f in figures.items() if "checks" in f]
        if checked:
            lines += ["", "Provenance checked over each gateway mode's whole measurement:", ""]
            lines += [f"- {n}: {check_summary(GATEWAY_MODES[n], c)}" for n, c in checked]
        lines.append("")
    if report.get("modes"):
        lines += ["## Gateway modes", ""]
        lines += [f"- {name}: {what}" for name, what in report["modes"].items()]
        lines.append("")
    if report.get("data_quality_monitors"):
        lines += quality_cost.markdown(report["data_quality_monitors"])
    if report.get("soak"):
        lines += soak.markdown(report["soak"])
    if report.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines) + "\n"


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
        "--latency-seconds", type=float, default=10.0, help="open-loop run length per rate"
    )
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[500, 1000, 2000], help="open-loop rates"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, metavar="MODE",
                        help="targets to measure (default: all; see below)")  # fmt: skip
    parser.add_argument("--upstreams", nargs="+", choices=UPSTREAMS, default=list(UPSTREAMS),
                        metavar="UPSTREAM",
                        help="static-nginx and/or model-server (default: both)")  # fmt: skip
    soak.add_arguments(parser, "soak-", 300.0)


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    soak.add_arguments(parser, "", 300.0)


def _stamp(report: dict[str, Any]) -> None:
    report["when"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["machine"] = (
        f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpus()} cores, Python {platform.python_version()}"
    )
    report["targets"] = bench_targets.as_json(
        bench_targets.evaluate(report, report_upstreams(report))
    )


def _write(report: dict[str, Any], name: str, text: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def main(args: argparse.Namespace) -> int:
    report = run_bench(args)
    _stamp(report)
    _write(report, "bench-latest", markdown(report, args.rates[0]))
    return 0


def soak_main(args: argparse.Namespace) -> int:
    """``python -m loadtest soak``: the soak alone, reported in ``soak-latest.{json,md}``."""
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
        for proc in reversed(bench.procs):
            proc.stop()
    _stamp(report)
    _write(report, "soak-latest", markdown(report, 0, title="Soak"))
    return 0


def _cpus() -> int:
    return os.cpu_count() or 1
