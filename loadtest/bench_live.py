"""``gateway-v1-live``: v1 with live Feast lookups, store-call coalescing on and off.

One real ``feast serve`` (the demo repo, on this machine, not pinned) serves two gateways
that differ only in ``feature_store.coalesce.enabled`` (``window_ms: 1.0``,
``max_entities: 64``); wrk at 32 connections cycles through the load's 500 v1 bodies
(491 customers), the two gateways taking turns for the bench's rounds. Per arm: successful
answers per second (median of the rounds), client failures, store calls per request (the
delta of ``gateway_feature_store_requests_total`` over the rounds divided by the answers
wrk counted), where the feature values came from (all must be live: a store too slow for
its timeout turns lookups into cache reads, which this mode is not about), and the CPU of
the gateway's and Feast's process trees. The figure is on over off (target >= 1.5x).

Each arm's config is checked with ``gateway check-config`` first. A gateway that refuses
the ``coalesce`` key (it does not know it yet) cannot run the arm: it is reported as
unavailable, never as a figure; the off arm then runs without the key (no coalescing
either), labelled so.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from loadtest import bench_failures, bench_prepare, bench_tree, wrk
from loadtest.bench_modes import MODELS, PRIMARY_NAME, Metrics, total
from loadtest.payloads import Payload
from loadtest.processes import Proc, free_port, gateway_command, pinned

ARMS: Final = ("on", "off")
COALESCE: Final = "window_ms: 1.0, max_entities: 64"
WARM_REQUESTS: Final = 50
STORE_CALLS: Final = "gateway_feature_store_requests_total"


def config(upstream_url: str, feast_url: str, coalesce: bool | None) -> str:
    """The gateway's YAML: v1 enrichment from ``feast_url``, coalescing on, off or (None)
    not configured at all; a missing feature is a 503, never a silent default."""
    lines = [
        "telemetry: {sampling_ratio: 0.1, exporter: none}",
        "feature_store:",
        f"  url: '{feast_url}'",
    ]
    if coalesce is not None:
        lines.append(f"  coalesce: {{enabled: {str(coalesce).lower()}, {COALESCE}}}")
    lines += [
        "models:",
        "  fraud:",
        f"    card: {MODELS / 'fraud-v1'}",
        f"    primary: {{name: {PRIMARY_NAME}, url: '{upstream_url}'}}",
        "    features: {on_missing: unavailable}",
    ]
    return "\n".join(lines) + "\n"


def refusal(path: Path) -> str | None:
    """``None`` when ``gateway check-config`` accepts ``path``, else its problems."""
    done = subprocess.run(gateway_command("check-config", str(path)),
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode == 0:
        return None
    problems = [line.strip() for line in done.stderr.splitlines()[1:] if line.strip()]
    text = "; ".join(problems) or done.stderr.strip() or f"exit {done.returncode}"
    return text.replace("|", "/")  # it goes into Markdown tables


@dataclass
class Arm:
    name: str
    config_note: str
    proc: Proc
    base: str
    rounds: list[wrk.WrkResult]
    cpu: float = 0.0
    feast_cpu: float = 0.0


def arm_configs(
    workdir: Path, upstream_url: str, feast_url: str
) -> tuple[dict[str, tuple[Path, str]], dict[str, str]]:
    """Per arm its config file and a note saying what it runs; per unavailable arm why."""
    ready: dict[str, tuple[Path, str]] = {}
    unavailable: dict[str, str] = {}
    for arm in ARMS:
        path = workdir / f"live-{arm}.yaml"
        path.write_text(config(upstream_url, feast_url, arm == "on"))
        refused = refusal(path)
        if refused is None:
            ready[arm] = (path, f"coalesce: {{enabled: {str(arm == 'on').lower()}, {COALESCE}}}")
            continue
        unavailable[arm] = f"the gateway refuses the coalesce key: {refused}"
        if arm == "off":  # without the key there is no coalescing either
            path.write_text(config(upstream_url, feast_url, None))
            if refusal(path) is None:
                ready[arm] = (path, f"no coalesce key (enabled: false refused: {refused})")
                del unavailable[arm]
    return ready, unavailable


def arm_figures(arm: Arm, before: Metrics, after: Metrics) -> dict[str, Any]:
    """An arm's figures from its wrk rounds and the gateway's counters around them."""

    def delta(name: str, **labels: str) -> int:
        return round(total(after, name, **labels) - total(before, name, **labels))

    ok = sum(r.ok for r in arm.rounds)
    store_calls = delta(STORE_CALLS)
    values = {s: delta("gateway_feature_values_served_total", source=s)
              for s in ("live", "cache", "defaults")}  # fmt: skip
    names = {dict(p).get("outcome", "") for n, p in after if n == STORE_CALLS}
    outcomes = {o: delta(STORE_CALLS, outcome=o) for o in sorted(names)}
    problems = []
    if values["cache"] or values["defaults"] or not values["live"]:
        problems.append(f"feature values not all live: {values}")
    return {
        "config": arm.config_note,
        "rps_c32": round(statistics.median(r.ok_per_second for r in arm.rounds)),
        "rps_c32_rounds": [round(r.ok_per_second) for r in arm.rounds],
        "answered": ok,
        "client_failures": bench_failures.from_wrk(arm.rounds),
        "store_calls": store_calls,
        "store_calls_per_request": round(store_calls / ok, 4) if ok else None,
        "store_outcomes": {o: n for o, n in outcomes.items() if n},
        "feature_values": values,
        "cpu_seconds_per_1000": round(arm.cpu / max(ok, 1) * 1000, 4),
        "feast_cpu_seconds_per_1000": round(arm.feast_cpu / max(ok, 1) * 1000, 4),
        "problems": problems,
    }


def _warm(base: str, payloads: Sequence[Payload]) -> list[str]:
    """Each body once (Feast and the gateway's pool warm up); the last ``WARM_REQUESTS``
    must answer 200 with live features, else the problem."""
    for index, payload in enumerate(payloads):
        status, headers = bench_prepare.post(base, payload)
        source = headers.get("x-gateway-feature-source")
        if index >= len(payloads) - WARM_REQUESTS and (status != 200 or source != "live"):
            return [f"warm-up: {status} with feature source {source}"]
    return []


def run(
    start: Callable[[Proc], Proc],
    feast: tuple[Proc, str],
    workdir: Path,
    payloads: Sequence[Payload],
    upstream: tuple[str, int],
    rounds: int,
    seconds: float,
    cores: tuple[int, int],
) -> dict[str, Any]:
    """Both arms over ``feast`` (process, URL) in front of ``upstream`` (name, port), the
    gateways on ``cores[0]``, wrk on ``cores[1]``; the section of the report."""
    feast_proc, feast_url = feast
    upstream_url = f"http://127.0.0.1:{upstream[1]}"
    ready, unavailable = arm_configs(workdir, upstream_url, feast_url)
    arms: dict[str, Arm] = {}
    for name, (path, note) in ready.items():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = gateway_command("--log-level", "WARNING", "serve", "--config", str(path),
                                  "--port", str(port))  # fmt: skip
        log = workdir / f"live-{name}.log"
        try:
            proc = start(Proc(f"live-{name}", pinned(command, cores[0]),
                              f"{base}/v2/health/live", log))  # fmt: skip
        except (RuntimeError, TimeoutError) as exc:
            unavailable[name] = f"the gateway did not start: {exc}"
            continue
        arms[name] = Arm(name, note, proc, base, [])
    warm = {name: _warm(arm.base, payloads) for name, arm in arms.items()}
    before = {name: bench_prepare.scrape(arm.base) for name, arm in arms.items()}
    requests = [(p.path, p.body) for p in payloads]
    for index in range(rounds):
        order = list(arms) if index % 2 == 0 else list(reversed(arms))
        for name in order:
            arm = arms[name]
            cpu, feast_cpu = bench_tree.tree(arm.proc.pid), bench_tree.tree(feast_proc.pid)
            result = wrk.run(arm.base + requests[0][0], requests, 32, seconds,
                             workdir / "live.lua", cores[1])  # fmt: skip
            arm.cpu += bench_tree.tree(arm.proc.pid).cpu_seconds - cpu.cpu_seconds
            arm.feast_cpu += bench_tree.tree(feast_proc.pid).cpu_seconds - feast_cpu.cpu_seconds
            arm.rounds.append(result)
    section: dict[str, Any] = {"upstream": upstream[0], "connections": 32, "rounds": rounds,
                               "seconds": seconds, "arms": {}}  # fmt: skip
    for name in ARMS:
        if name in unavailable:
            section["arms"][name] = {"unavailable": unavailable[name]}
            continue
        arm = arms[name]
        figures = arm_figures(arm, before[name], bench_prepare.scrape(arm.base))
        figures["problems"] = warm[name] + figures["problems"]
        section["arms"][name] = figures
    measured = section["arms"]
    if all("rps_c32" in measured[a] for a in ARMS) and measured["off"]["rps_c32"]:
        section["throughput_on_over_off"] = round(
            measured["on"]["rps_c32"] / measured["off"]["rps_c32"], 3
        )
    return section


def markdown(live: dict[str, Any]) -> list[str]:
    """The report's section on the live-lookup mode."""
    lines = [
        "## v1 with live lookups: store-call coalescing on and off",
        "",
        f"Gateway v1 with live Feast lookups in front of {live['upstream']}, wrk at "
        f"{live['connections']} connections, the two arms taking turns for {live['rounds']} "
        f"rounds of {live['seconds']:g} s.",
        "",
        "| coalescing | config | req/s c32 | rounds | client failures | store calls / request "
        "| feature values | gateway CPU s / 1k | Feast CPU s / 1k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in live["arms"].items():
        if "unavailable" in f:
            lines.append(f"| {name} | unavailable: {f['unavailable']} |  |  |  |  |  |  |  |")
            continue
        values = ", ".join(f"{n} {s}" for s, n in f["feature_values"].items())
        lines.append(
            f"| {name} | {f['config']} | {f['rps_c32']} | {f['rps_c32_rounds']} "
            f"| {bench_failures.describe(f['client_failures'])} "
            f"| {f['store_calls_per_request']} | {values} | {f['cpu_seconds_per_1000']} "
            f"| {f['feast_cpu_seconds_per_1000']} |"
        )
    ratio = live.get("throughput_on_over_off")
    lines += ["", f"Throughput on / off: {ratio if ratio is not None else 'unavailable'}."]
    problems = [f"{n}: {p}" for n, f in live["arms"].items() for p in f.get("problems", [])]
    if problems:
        lines += ["", "Problems (the figure does not count):", ""]
        lines += [f"- {p}" for p in problems]
    return [*lines, ""]
