"""Added latency of the gateway over calling the model server directly, in one run.

    python -m loadtest.overhead [--requests 3000] [--model-dir models/fraud-v1] [--against REV]

Starts a real ``gateway model-server`` and a real ``gateway serve`` in front of it (one
worker each), then sends the same single-row OIP infer alternately to each, one request
at a time, so both series see the same machine noise. Reports p50/p90/p99 of each and
their differences as JSON.

``--against REV`` also runs the gateway of another git revision (checked out in a
temporary worktree, same venv, same config) in the same interleaved rounds, and reports
how this tree's added latency compares with that revision's, in percent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
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
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(_worktree(args.against)) if args.against else None
        report = _run(args, other)
    if args.against:
        report["against"] = args.against
        report[f"added_vs_{args.against}_percent"] = _compare(report, args.against)
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
        return report
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
