"""What the data-quality monitors cost per request, measured two ways in one run.

    python -m loadtest.quality_cost [--requests 3000] [--chunk 100] [--max-us 15]

1. **In the pipeline**: two prediction services, identical but for
   ``data_quality.enabled``, serve the same single-row v1 requests (holdout rows, the
   store's features from an in-memory lookup, the upstream answering at once in process),
   taking turns chunk by chunk so each pair of chunks sees the same machine noise. The
   figure is the median of the paired differences of per-request time: what a request
   pays for the monitors.
2. **The calls themselves**: the monitor calls a request makes (inputs, store sources,
   score, out-of-distribution counts), timed alone on the same rows.

It also times one :meth:`~gateway.quality.monitors.ModelQuality.refresh` with full
windows at the default window size (the timer's work, once per ``refresh_seconds``).
Prints JSON; exits 1 when either per-request figure is above ``--max-us``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider

from gateway.features.cache import LastKnownGood
from gateway.features.enrichment import Enricher
from gateway.features.feast_client import FeatureValue
from gateway.resilience.breaker import CircuitBreaker
from gateway.routing.shadow import ShadowDispatcher
from gateway.service.ladder import Ladder
from gateway.service.pipeline import PredictionCall, PredictionService
from gateway.service.runtime import build_runtime
from gateway.settings import parse_config
from gateway.telemetry.feature_metrics import FeatureMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream.client import Upstream

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = ROOT / "loadtest" / "data" / "holdout.jsonl"
ANSWER = orjson.dumps(
    {
        "model_name": "fraud-v1",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [0]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.9, 0.1]},
        ],
    }
)


def config_text(enabled: bool) -> str:
    return f"""
feature_store: {{url: "http://store.invalid", timeout_ms: 500}}
models:
  fraud:
    card: {ROOT / "models" / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://upstream.invalid", timeout_ms: 2000}}
    data_quality: {{enabled: {"true" if enabled else "false"}}}
"""


class Store:
    """The feature store seam, answering every holdout customer's features at once."""

    url = "http://store.invalid"

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        self.features = {
            row["instance"]["customer_id"]: {
                f"customer_stats:{name}": FeatureValue(value, "PRESENT", now)
                for name, value in row["features"].items()
            }
            for row in rows
        }

    async def online_features(
        self,
        refs: Sequence[str],
        entity_key: str,
        entity_ids: Sequence[str],
        within_seconds: float | None = None,
    ) -> dict[str, list[FeatureValue]]:
        return {ref: [self.features[entity][ref] for entity in entity_ids] for ref in refs}


async def answer(upstream: Upstream, body: bytes, headers: Mapping[str, str], s: float) -> bytes:
    return ANSWER


async def shadow_answer(upstream: Upstream, body: bytes) -> bytes:
    return ANSWER


def service(enabled: bool, store: Store, folder: Path) -> PredictionService:
    config = parse_config(config_text(enabled), folder / "gateway.yaml")
    metrics = GatewayMetrics()
    ladder_metrics = LadderMetrics(metrics.registry)
    tracer = TracerProvider().get_tracer("quality-cost")
    runtime = build_runtime(config, time.monotonic, ladder_metrics)
    return PredictionService(
        runtime,
        build_runtime=lambda new, old: build_runtime(new, time.monotonic, ladder_metrics, old),
        ladder=Ladder(answer, tracer, metrics, ladder_metrics, time.monotonic),
        enricher=Enricher(
            client=store,
            breaker=CircuitBreaker("feature_store", clock=time.monotonic),
            cache=LastKnownGood(100_000, 86_400, time.time),
            metrics=FeatureMetrics(metrics.registry),
            tracer=tracer,
            wall_clock=time.time,
            timer=time.monotonic,
        ),
        shadows=ShadowDispatcher(shadow_answer),
        probe=lambda upstream, seconds: asyncio.sleep(0, True),
        metrics=metrics,
        tracer=tracer,
        clock=time.monotonic,
    )


async def serve_all(gateway: PredictionService, bodies: Sequence[bytes]) -> float:
    """Seconds per request, serving ``bodies`` one after another."""
    tracer = gateway.tracer
    started = time.perf_counter()
    for body in bodies:

        async def read(limit: int, body: bytes = body) -> bytes:
            return body

        call = PredictionCall("v1", "fraud", None, {}, read, time.monotonic())
        with tracer.start_as_current_span("request") as span:
            await gateway.predict(call, span)
    return (time.perf_counter() - started) / len(bodies)


def monitor_calls_us(gateway: PredictionService, bodies: Sequence[bytes], store: Store) -> float:
    """Microseconds per request of the monitor calls alone, on decoded holdout rows."""
    quality = gateway.runtime.model("fraud").quality
    assert quality is not None
    model = gateway.runtime.model("fraud")
    prepared = []
    for body in bodies:
        decoded = model.decoder.decode_instances(orjson.loads(body))
        customer = decoded.entity_ids[0] if decoded.entity_ids else ""
        store_columns = {
            ref.split(":", 1)[1]: [value.value] for ref, value in store.features[customer].items()
        }
        prepared.append((decoded.columns, store_columns))
    sources = [_Row({name: "live" for name in prepared[0][1]})]
    started = time.perf_counter()
    for columns, store_columns in prepared:
        quality.observe(columns)
        quality.observe(store_columns)
        quality.observe_sources(sources)
        quality.observe_scores("primary", [0.1])
    return (time.perf_counter() - started) / len(prepared) * 1e6


class _Row:
    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources
        self.stale: frozenset[str] = frozenset()


def measure(
    requests: int = 3000, chunk: int = 100, rounds: int = 5, max_us: float = 15.0
) -> dict[str, Any]:
    """Both figures of the module docstring and the refresh time, as a JSON-able report."""
    rows = [json.loads(line) for line in HOLDOUT.read_text().splitlines()]
    bodies = [orjson.dumps({"instances": [row["instance"]]}) for row in rows[:requests]]
    if not bodies:
        raise SystemExit(f"no holdout rows in {HOLDOUT}")
    store = Store(rows)
    with tempfile.TemporaryDirectory() as folder:
        arms = {
            "monitors_off": service(False, store, Path(folder)),
            "monitors_on": service(True, store, Path(folder)),
        }
        paired: list[float] = []  # per request, on minus off, one per pair of chunks
        per_arm: dict[str, list[float]] = {name: [] for name in arms}
        chunks = [bodies[i : i + chunk] for i in range(0, len(bodies), chunk)]

        async def turns() -> None:
            for arm in arms.values():  # warm-up: caches, first-call costs
                await serve_all(arm, bodies[:200])
            for round_ in range(rounds):
                for part in chunks:
                    # Alternate who goes first, so neither arm always follows the other.
                    order = ["monitors_off", "monitors_on"][:: 1 if round_ % 2 else -1]
                    got = {name: await serve_all(arms[name], part) * 1e6 for name in order}
                    paired.append(got["monitors_on"] - got["monitors_off"])
                    for name, value in got.items():
                        per_arm[name].append(value)

        asyncio.run(turns())
        on = arms["monitors_on"]
        calls_us = statistics.median(monitor_calls_us(on, bodies, store) for _ in range(rounds))
        quality = on.runtime.model("fraud").quality
        assert quality is not None
        started = time.perf_counter()
        quality.refresh()
        refresh_ms = (time.perf_counter() - started) * 1000
        window_counts = {name: f.window_count for name, f in quality.inputs.items()}

    medians = {name: statistics.median(values) for name, values in per_arm.items()}
    added = statistics.median(paired)
    report: dict[str, Any] = {
        "requests_per_arm": len(bodies) * rounds,
        "pairs": len(paired),
        "pipeline_us_per_request": {k: round(v, 2) for k, v in medians.items()},
        "added_us_per_request": round(added, 2),
        "added_us_quartiles": [round(q, 2) for q in statistics.quantiles(paired, n=4)],
        "added_share_of_pipeline": round(added / medians["monitors_off"], 4),
        "monitor_calls_us_per_request": round(calls_us, 2),
        "refresh_ms_full_windows": round(refresh_ms, 3),
        "window_counts": window_counts,
        "max_us": max_us,
    }
    report["ok"] = added <= max_us and calls_us <= max_us
    return report


def markdown(report: dict[str, Any]) -> list[str]:
    """The bench report's section on the monitors."""
    verdict = "met" if report["ok"] else "missed"
    pipeline = report["pipeline_us_per_request"]
    return [
        "## Data-quality monitors",
        "",
        f"Target: at most {report['max_us']:g} µs per request at the default window: {verdict}.",
        "",
        f"- added to the in-process pipeline (median of {report['pairs']} paired chunks): "
        f"{report['added_us_per_request']} µs per request (quartiles "
        f"{report['added_us_quartiles']}); pipeline {pipeline['monitors_off']} µs without, "
        f"{pipeline['monitors_on']} µs with",
        f"- the monitor calls alone: {report['monitor_calls_us_per_request']} µs per request",
        f"- one refresh with full windows: {report['refresh_ms_full_windows']} ms "
        "(once per refresh_seconds, off the request path)",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per arm")
    parser.add_argument("--chunk", type=int, default=100, help="requests per turn")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the requests")
    parser.add_argument("--max-us", type=float, default=15.0, help="target per request")
    args = parser.parse_args(argv)
    report = measure(args.requests, args.chunk, args.rounds, args.max_us)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
