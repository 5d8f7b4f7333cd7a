"""Added latency of the gateway over calling the model server directly, in one run.

    python -m loadtest.overhead [--requests 3000] [--model-dir models/fraud-v1] [--against REV]
                                [--throughput-rounds 5 [--throughput-seconds 5]]

Starts a real ``gateway model-server`` and a real ``gateway serve`` in front of it (one
worker each), then sends the same single-row OIP infer alternately to each, one request
at a time, so both series see the same machine noise. Reports p50/p90/p99 of each and
their differences as JSON.

``--against REV`` also runs the gateway of another git revision (checked out in a
temporary worktree, same venv, same config) in the same interleaved rounds, and reports
how this tree's added latency compares with that revision's, in percent.

``--throughput-rounds N`` then measures throughput as ``make bench`` does: each gateway in
front of nginx answering a fixed OIP body (so the gateway is the bottleneck), on the
server core, ``wrk`` at 32 connections on the load core, the gateways taking turns for N
rounds; it reports each one's requests per second (median and every round) and, with
``--against``, this tree's over the other revision's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from loadtest import bench, wrk
from loadtest.processes import Proc, free_port, pinned

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


async def _measure(targets: dict[str, str], body: bytes, requests: int) -> dict[str, Any]:
    """Latency of each named URL, one request at a time, the targets taking turns."""
    headers = {"Content-Type": "application/json"}
    series: dict[str, list[float]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):  # warm every path and its connection pool
            for url in targets.values():
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
        for _ in range(requests):
            for name, url in targets.items():
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{name} answered {r.status}")
                series[name].append(time.perf_counter() - started)
    figures = {name: _percentiles(samples) for name, samples in series.items()}
    direct = figures["direct"]
    report: dict[str, Any] = {"requests_each": requests, **figures}
    for name in targets:
        if name != "direct":
            added = {k: round(figures[name][k] - direct[k], 3) for k in direct}
            report["added" if name == "gateway" else f"added_{name}"] = added
    return report


def _compare(report: dict[str, Any], name: str) -> dict[str, float]:
    """This tree's added latency relative to ``name``'s, in percent (+: slower)."""
    ours, theirs = report["added"], report[f"added_{name}"]
    return {k: round((ours[k] - theirs[k]) / theirs[k] * 100, 1) for k in ours if theirs[k] > 0}


@contextlib.contextmanager
def _worktree(revision: str) -> Iterator[Path]:
    """A temporary checkout of ``revision`` of this repository."""
    folder = Path(tempfile.mkdtemp(prefix="overhead-rev-")) / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", "-q", str(folder), revision], check=True)
    try:
        yield folder
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(folder)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests to each target")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "fraud-v1")
    parser.add_argument("--sampling-ratio", type=float, default=0.1)
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run the gateway of this git revision (e.g. the skeleton's) and compare",
    )
    parser.add_argument(
        "--throughput-rounds",
        type=int,
        default=0,
        help="wrk rounds at 32 connections per gateway over a static upstream (default 0: none)",
    )
    parser.add_argument(
        "--throughput-seconds", type=float, default=5.0, help="length of one wrk round"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(_worktree(args.against)) if args.against else None
        report = _run(args, other)
    if args.against:
        report["against"] = args.against
        report[f"added_vs_{args.against}_percent"] = _compare(report, args.against)
        rps = report.get("throughput", {}).get("rps_c32_median")
        if rps:
            report[f"throughput_vs_{args.against}"] = round(rps["gateway"] / rps[args.against], 3)
    print(json.dumps(report, indent=2))
    return 0


def _run(args: argparse.Namespace, other_tree: Path | None) -> dict[str, Any]:
    upstream_port, gateway_port, other_port = free_port(), free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="overhead-"))
    config = folder / "gateway.yaml"
    config.write_text(
        f"telemetry: {{sampling_ratio: {args.sampling_ratio}}}\n"
        f"models:\n  fraud:\n    card: {args.model_dir.resolve()}\n"
        f"    primary: {{name: fraud-v1, url: 'http://127.0.0.1:{upstream_port}'}}\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(folder)}
    gw = [sys.executable, "-m", "gateway"]
    serve = ["--log-level", "WARNING", "serve", "--config", str(config), "--port"]
    procs = [
        subprocess.Popen([*gw, "model-server", str(args.model_dir), "--port", str(upstream_port)], env=env),
        subprocess.Popen([*gw, *serve, str(gateway_port)], env=env, cwd=ROOT),
    ]  # fmt: skip
    infer = "/v2/models/fraud/infer"
    targets = {
        "direct": f"http://127.0.0.1:{upstream_port}{infer}",
        "gateway": f"http://127.0.0.1:{gateway_port}{infer}",
    }
    if other_tree is not None:  # the other revision's code, imported from its own tree
        other_env = {**env, "PYTHONPATH": str(other_tree)}
        procs.append(
            subprocess.Popen([*gw, *serve, str(other_port)], env=other_env, cwd=other_tree)
        )
        targets[args.against] = f"http://127.0.0.1:{other_port}{infer}"
    try:
        _wait(f"http://127.0.0.1:{upstream_port}/v2/health/ready")
        for url in list(targets.values())[1:]:
            _wait(url.replace(infer, "/v2/health/ready"))
        report = asyncio.run(_measure(targets, _body(args.model_dir), args.requests))
        report["sampling_ratio"] = args.sampling_ratio
        if args.throughput_rounds > 0:
            upstream = f"http://127.0.0.1:{upstream_port}"
            trees = {"gateway": (ROOT, env)}
            if other_tree is not None:
                trees[args.against] = (other_tree, {**env, "PYTHONPATH": str(other_tree)})
            report["throughput"] = _throughput(args, folder, upstream, trees)
        return report
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)


def _throughput(
    args: argparse.Namespace,
    folder: Path,
    model_server: str,
    trees: dict[str, tuple[Path, dict[str, str]]],
) -> dict[str, Any]:
    """wrk at 32 connections against each tree's gateway in turns, over a static upstream."""
    bench.ensure_tools()
    body = _body(args.model_dir)
    infer = "/v2/models/fraud/infer"
    with urllib.request.urlopen(urllib.request.Request(
        model_server + infer, data=body, headers={"Content-Type": "application/json"}
    )) as answer:  # fmt: skip
        fixed = answer.read().decode()
    static_port = free_port()
    procs = [bench.nginx(folder, "static", static_port, bench.static_location(fixed))]
    config = folder / "throughput.yaml"
    config.write_text(
        f"telemetry: {{sampling_ratio: {args.sampling_ratio}}}\n"
        f"models:\n  fraud:\n    card: {args.model_dir.resolve()}\n"
        f"    primary: {{name: fraud-v1, url: 'http://127.0.0.1:{static_port}'}}\n"
    )
    urls: dict[str, str] = {}
    for name, (tree, env) in trees.items():
        port = free_port()
        command = [sys.executable, "-m", "gateway", "--log-level", "WARNING", "serve",
                   "--config", str(config), "--port", str(port)]  # fmt: skip
        health = f"http://127.0.0.1:{port}/v2/health/ready"
        # `python -m` imports the package of its working folder: each tree runs its own code.
        proc = Proc(f"gateway-{name}", pinned(command, bench.SERVER_CORE), health,
                    folder / f"throughput-{name}.log", env, cwd=tree)  # fmt: skip
        procs.append(proc)
        urls[name] = f"http://127.0.0.1:{port}{infer}"
    try:
        for proc in procs:
            proc.start()
        rounds = wrk_rounds(
            urls,
            (infer, body),
            args.throughput_rounds,
            args.throughput_seconds,
            folder / "post.lua",
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
    return {
        "connections": 32,
        "seconds": args.throughput_seconds,
        "rps_c32_rounds": rounds,
        "rps_c32_median": {name: statistics.median(r) for name, r in rounds.items()},
    }


def wrk_rounds(
    urls: dict[str, str], request: tuple[str, bytes], rounds: int, seconds: float, script: Path
) -> dict[str, list[int]]:
    """Requests per second of each URL under wrk at 32 connections, ``rounds`` times, the
    URLs taking turns so each sees the same machine noise (after a 1 s warm-up each)."""
    for url in urls.values():  # warm each path and its upstream pool
        wrk.run(url, [request], 32, 1, script, bench.LOAD_CORE)
    measured: dict[str, list[int]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            result = wrk.run(url, [request], 32, seconds, script, bench.LOAD_CORE)
            if result.failures:  # a failed request is no throughput, and no comparison
                raise RuntimeError(
                    f"{name}: {result.non_2xx} error answers and {result.socket_errors} "
                    "socket errors under wrk"
                )
            measured[name].append(round(result.ok_per_second))
    return measured


if __name__ == "__main__":
    sys.exit(main())
