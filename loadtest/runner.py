"""Runs a scenario against real processes and checks its expectations.

    python -m loadtest run loadtest/scenarios/primary-kill.yaml [--out DIR] [--scale 0.5]

Starts the scenario's stack (Feast over the bundled repo when asked, model servers, the
gateway with the scenario's config), sends the open-loop load phase by phase while the
faults fire on their schedule, stops everything, writes the report, and exits non-zero
when an expectation fails. Meanwhile a background task polls the gateway's
``/admin/status`` (with a token generated for the run) for its breakers' states, and, when
the scenario has a ``data_quality`` section, another for the model's data-quality verdicts.

A scenario with ``corrupt``/``heal`` faults gets a fault proxy between the gateway and Feast
(``loadtest/feast_proxy.py``) that multiplies one feature's values on command. A scenario
with ``variants`` runs once per variant, each reported under ``OUT/<variant>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.contracts.card import load_card
from loadtest import chaos, generator, rollout_watch
from loadtest.breaker_timeline import TOKEN_VARIABLE, BreakerSample, poll_breakers
from loadtest.chaos import Fired
from loadtest.generator import Record
from loadtest.payloads import (
    Payload,
    load_rows,
    mixed_payloads,
    v1_payloads,
    v2_payloads,
    zipf_draws,
    zipf_payloads,
)
from loadtest.processes import ROOT, Proc, free_port, gateway_command
from loadtest.quality_watch import QualitySample, poll_quality
from loadtest.scenario import PROXY_ACTIONS, Fault, Scenario

MODELS = ROOT / "models"


@dataclass
class Stack:
    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    gateway_config: Path | None = None
    gateway_url: str = ""
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            proc.stop()


def start_stack(scenario: Scenario, workdir: Path) -> Stack:
    stack = Stack(workdir)
    logs = workdir / "logs"
    try:
        feast_url = ""
        if scenario.stack.feast:
            from gateway.demo.feature_repo import feast_serve_command, prepare_feature_repo

            repo = prepare_feature_repo(workdir / "feature_repo")
            port = free_port()
            feast_url = f"http://127.0.0.1:{port}"
            runtime = workdir / "run"
            runtime.mkdir(exist_ok=True)
            command = feast_serve_command(repo, "127.0.0.1", port, workers=scenario.stack.feast_workers,
                                          max_requests=None if scenario.stack.feast_recycling else 0)  # fmt: skip
            stack.procs["feast"] = Proc("feast", command,
                                        f"{feast_url}/health", logs / "feast.log",
                                        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}).start(90)  # fmt: skip
            stack.urls["feast"] = feast_url
            warm_feast(feast_url)
            if any(f.action in PROXY_ACTIONS for f in scenario.faults):
                feast_url = _start_feast_proxy(stack, feast_url, logs)
        for name, spec in scenario.stack.model_servers.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = gateway_command("model-server", str(MODELS / spec.model), "--port", str(port),
                                      "--fault-mode", spec.fault_mode, "--fault-delay-ms", str(spec.fault_delay_ms),
                                      "--fault-rate", str(spec.fault_rate))  # fmt: skip
            stack.procs[name] = Proc(
                name, command, f"{url}/v2/health/ready", logs / f"{name}.log"
            ).start()
            stack.urls[name] = url
        config = scenario.stack.gateway.replace("{models}", str(MODELS)).replace(
            "{feast_url}", feast_url
        )
        for name, url in stack.urls.items():
            config = config.replace(f"{{url:{name}}}", url)
        stack.gateway_config = workdir / "gateway.yaml"
        stack.gateway_config.write_text(config)
        port = free_port()
        stack.gateway_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, TOKEN_VARIABLE: stack.admin_token}  # for the breaker poller
        stack.procs["gateway"] = Proc("gateway", gateway_command("--log-level", "WARNING", "serve", "--config",
                                      str(stack.gateway_config), "--port", str(port)),
                                      f"{stack.gateway_url}/v2/health/live", logs / "gateway.log", env=env).start()  # fmt: skip
    except BaseException:
        stack.stop()
        raise
    return stack


# What the demo repo's feature view serves (gateway/demo/feature_repo.py).
WARM_UP_LOOKUP = {"features": ["customer_stats:avg_amount_30d"],
                  "entities": {"customer_id": ["c-0000"]}}  # fmt: skip


def warm_feast(url: str, attempts: int = 3) -> None:
    """One online lookup before the load: Feast's first answer (registry and store opened
    lazily) can take longer than the gateway's lookup budget, which would open the store's
    breaker at t=0 and serve defaults to the first phase for reasons no scenario is about."""
    request = urllib.request.Request(f"{url}/get-online-features", data=orjson.dumps(WARM_UP_LOOKUP),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=30):
                return
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def _start_feast_proxy(stack: Stack, feast_url: str, logs: Path) -> str:
    """Start the fault proxy in front of Feast; the gateway is pointed at the proxy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "loadtest.feast_proxy", feast_url, "--port", str(port)]
    stack.procs["feast-proxy"] = Proc("feast-proxy", command, f"{url}/_proxy/health",
                                      logs / "feast-proxy.log", cwd=ROOT).start()  # fmt: skip
    stack.urls["feast-proxy"] = url
    return url


def _proxy_request(stack: Stack, method: str, body: bytes | None = None) -> None:
    request = urllib.request.Request(f"{stack.urls['feast-proxy']}/_proxy/corruption", data=body,
                                     method=method, headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5):
        pass


def apply_fault(stack: Stack, fault: Fault) -> float | None:
    """Apply ``fault``; for a restart, the ``time.perf_counter()`` at which the part
    answered its health check again (before any warm-up lookup of the runner's own)."""
    proc = stack.procs.get(fault.target or "")
    healed = None
    if fault.action == "kill" and proc:
        proc.signal(signal.SIGKILL)
        if proc.process:
            proc.process.wait()
    elif fault.action == "stop" and proc:
        proc.signal(signal.SIGSTOP)
    elif fault.action == "cont" and proc:
        proc.signal(signal.SIGCONT)
    elif fault.action == "restart" and proc:
        proc.signal(signal.SIGKILL)
        if proc.process:
            proc.process.wait()
        proc.start(90)
        healed = time.perf_counter()
        if fault.target == "feast":
            warm_feast(stack.urls["feast"])  # as at the start: a cold Feast is slow
    elif fault.action == "fault":
        body = orjson.dumps({"mode": fault.mode, "delay_ms": fault.delay_ms, "rate": fault.rate})
        request = urllib.request.Request(f"{stack.urls[fault.target or '']}/_debug/fault", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5):
            pass
    elif fault.action == "corrupt":
        _proxy_request(
            stack, "POST", orjson.dumps({"feature": fault.feature, "factor": fault.factor})
        )
    elif fault.action == "heal":
        _proxy_request(stack, "DELETE")
    elif fault.action == "set-weight":
        subprocess.run(gateway_command("rollout", "--config", str(stack.gateway_config), "set-weight",
                                       str(fault.model), str(fault.percent)), check=True, capture_output=True)  # fmt: skip
    elif fault.action == "rollout-start":
        subprocess.run(gateway_command("rollout", "--config", str(stack.gateway_config), "start",
                                       str(fault.model)), check=True, capture_output=True)  # fmt: skip
    else:
        raise ValueError(f"cannot apply {fault.action} to {fault.target!r}")
    return healed


def payloads_for(scenario: Scenario) -> list[Payload] | Iterator[Payload]:
    """The first ``rows`` held-out rows (cycled by each phase), or with ``order: zipf`` one
    endless long-tailed draw from every held-out row that the phases continue."""
    load = scenario.load
    zipf = load.order == "zipf"
    rows = load_rows(limit=None if zipf else load.rows)
    if load.api == "mixed":
        v1 = v1_payloads(rows, with_features=load.with_features)
        v2 = v2_payloads(rows, load_card(MODELS / "fraud-v1"))
        customers = [str(row["instance"]["customer_id"]) for row in rows]
        indices = (zipf_draws(customers, load.zipf_s, load.seed) if zipf
                   else itertools.cycle(range(len(rows))))  # fmt: skip
        return mixed_payloads(v1, v2, indices, load.v2_share)
    if load.api == "v2":
        payloads = v2_payloads(rows, load_card(MODELS / "fraud-v1"))
    else:
        payloads = v1_payloads(rows, with_features=load.with_features)
    return zipf_payloads(rows, payloads, load.zipf_s, load.seed) if zipf else payloads


@dataclass
class Run:
    records: list[Record]
    faults: list[tuple[float, Fault]]  # when each fault actually fired
    breakers: list[BreakerSample] = field(default_factory=list)
    quality: list[QualitySample] = field(default_factory=list)
    fired: list[Fired] = field(default_factory=list)  # when each began and was done
    gateway_rss: list[tuple[float, int]] = field(default_factory=list)  # (t, bytes)


RSS_INTERVAL_SECONDS = 5.0


async def sample_rss(proc: Proc, stop: asyncio.Event, start: float) -> list[tuple[float, int]]:
    """The gateway's resident memory every few seconds until ``stop`` (none once it died)."""
    out: list[tuple[float, int]] = []
    while not stop.is_set():
        with contextlib.suppress(OSError):
            out.append((time.perf_counter() - start, proc.rss_bytes()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RSS_INTERVAL_SECONDS)
    return out


async def drive(scenario: Scenario, stack: Stack) -> Run:
    payloads = payloads_for(scenario)
    fired: list[tuple[float, Fault]] = []
    spans: list[Fired] = []
    start = time.perf_counter()

    async def fire(fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at - (time.perf_counter() - start)))
        began = time.perf_counter() - start
        fired.append((began, fault))
        healed = await asyncio.to_thread(apply_fault, stack, fault)
        done = (healed if healed is not None else time.perf_counter()) - start
        spans.append(Fired(began, done, fault.action, fault.target or ""))

    stop_polling = asyncio.Event()
    poller = asyncio.create_task(
        poll_breakers(stack.gateway_url, stack.admin_token, stop_polling, start=start)
    )
    watch = scenario.data_quality
    quality_poller = None
    if watch is not None:
        quality_poller = asyncio.create_task(poll_quality(
            stack.gateway_url, stack.admin_token, watch.model, stop_polling, start=start,
            interval=watch.poll_seconds))  # fmt: skip
    gateway = stack.procs.get("gateway")
    rss = asyncio.create_task(sample_rss(gateway, stop_polling, start)) if gateway else None
    fault_tasks = [asyncio.create_task(fire(f)) for f in scenario.faults]
    records: list[Record] = []
    offset = 0.0
    try:
        for phase in scenario.load.phases:
            records += await generator.run(
                stack.gateway_url, payloads, phase.rate, phase.seconds, offset=offset
            )
            offset += phase.seconds
        await asyncio.gather(*fault_tasks)
    finally:
        stop_polling.set()
        breakers = await poller
        quality = await quality_poller if quality_poller is not None else []
        gateway_rss = await rss if rss is not None else []
    return Run(records, fired, breakers, quality, spans, gateway_rss)


def main(path: Path, out: Path | None, scale: float = 1.0) -> int:
    from loadtest.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        print(f"loadtest run: {exc}", file=sys.stderr)
        return 2
    out = out or ROOT / "loadtest" / "results" / scenario.name
    # Scaled after the variant is applied: a variant's expectations have durations too.
    runs = {name: scenario.with_variant(name) for name in scenario.variants} or {"": scenario}
    results = {
        name: run_one(scaled(one, scale) if scale != 1.0 else one, out / name if name else out)
        for name, one in runs.items()
    }
    if scenario.variants:
        for name, code in results.items():
            print(f"variant {name}: {'passed' if code == 0 else 'FAILED'}")
    return max(results.values())


def run_one(scenario: Scenario, out: Path) -> int:
    """Run one scenario (no variants left), write its report to ``out``; 1 when it failed."""
    from loadtest.report import Verdict, evaluate, write_report

    workdir = Path(tempfile.mkdtemp(prefix=f"scenario-{scenario.name.replace('/', '-')}-"))
    stack = start_stack(scenario, workdir)
    rollout = None
    try:
        run = asyncio.run(drive(scenario, stack))
        if scenario.expect.rollout is not None:
            rollout = rollout_watch.outcome(stack.gateway_url, stack.admin_token,
                                            stack.gateway_config, scenario.expect.rollout)  # fmt: skip
    finally:
        stack.stop()
    verdicts = evaluate(scenario, run.records, run.faults, run.quality)
    if rollout is not None:
        assert scenario.expect.rollout is not None
        rollout["canary_requests_served"] = sum(r.variant == "canary" for r in run.records)
        verdicts += [Verdict(ok, text) for ok, text in
                     rollout_watch.verdicts(rollout, scenario.expect.rollout)]  # fmt: skip
        (out / "rollout.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "rollout.json").write_bytes(orjson.dumps(rollout, option=orjson.OPT_INDENT_2))
    chaos_doc = None
    if scenario.expect.chaos is not None:
        chaos_doc = chaos.figures(run.records, run.fired, run.breakers, run.gateway_rss,
                                  scenario.expect.chaos)  # fmt: skip
        verdicts += [
            Verdict(ok, text) for ok, text in chaos.verdicts(chaos_doc, scenario.expect.chaos)
        ]
    write_report(scenario, run.records, run.faults, verdicts, out, run.breakers, run.quality,
                 chaos_doc)  # fmt: skip
    failed = [v for v in verdicts if not v.ok]
    for verdict in verdicts:
        print(("PASS " if verdict.ok else "FAIL ") + verdict.text)
    print(f"report: {out}")
    return 1 if failed else 0


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """The same scenario with every duration (phases, fault times, windows) times ``factor``.
    Detection bounds keep their seconds: how fast the gateway notices is not the run's length."""
    phases = tuple(
        p.model_copy(update={"seconds": p.seconds * factor}) for p in scenario.load.phases
    )
    faults = tuple(f.model_copy(update={"at": f.at * factor}) for f in scenario.faults)
    expect = scenario.expect.model_copy(update={
        "shares": tuple(s.model_copy(update={"skip_seconds": s.skip_seconds * factor}) for s in scenario.expect.shares),
        "recovery": tuple(r.model_copy(update={"after": r.after * factor}) for r in scenario.expect.recovery),
        "auc": tuple(a.model_copy(update={"skip_seconds": a.skip_seconds * factor}) for a in scenario.expect.auc),
        "quality_status": tuple(q.model_copy(update={"skip_seconds": q.skip_seconds * factor})
                                for q in scenario.expect.quality_status),
    })  # fmt: skip
    return scenario.model_copy(update={"load": scenario.load.model_copy(update={"phases": phases}),
                                       "faults": faults, "expect": expect})  # fmt: skip
