"""What predict API keys cost per request, measured in process in one run.

    python -m loadtest.auth_cost [--requests 3000] [--chunk 100] [--rounds 5]

1. **In the pipeline**: two prediction services, identical but for the ``auth:`` section,
   serve the same single-row v2 requests (the upstream answering at once in process, no
   feature store: the lightest path, so the check's share is as large as it gets), taking
   turns chunk by chunk so each pair of chunks sees the same machine noise. The figure is
   the median of the paired differences of per-request time: what a request with a valid
   key pays for the check (hash, lookup, token bucket, counter, span attributes).
2. **The calls themselves**: :meth:`KeyTable.admit` for a valid key, and the refusal of
   a request without a valid key (what an unauthenticated flood costs per request), timed
   alone; and the check a request pays without an ``auth:`` section (one attribute test).

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import tempfile
import time
import timeit
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider
from starlette.datastructures import Headers

from gateway.errors import Unauthenticated
from gateway.routing.shadow import ShadowDispatcher
from gateway.service.ladder import Ladder
from gateway.service.pipeline import PredictionCall, PredictionService
from gateway.service.runtime import build_runtime
from gateway.settings import parse_config
from gateway.telemetry.auth_metrics import AuthMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream.client import Upstream

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789abcdef"
ANSWER = orjson.dumps(
    {
        "model_name": "fraud-v1",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [0]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.9, 0.1]},
        ],
    }
)
ROW: dict[str, Any] = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
       "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
       "hour": 14, "is_foreign": False}  # fmt: skip


def config_text(auth: bool) -> str:
    # 100 keys, so the lookup is a real table's; the bench key is never limited.
    keys = "".join(
        f"\n    - {{name: client-{i}, sha256: {hashlib.sha256(f'k{i}'.encode()).hexdigest()},"
        " rate_per_second: 1000000, burst: 1000000}"
        for i in range(99)
    )
    section = f"""
auth:
  api_keys:
    - {{name: bench, sha256: {hashlib.sha256(KEY.encode()).hexdigest()}, rate_per_second: 1000000000, burst: 1000000, models: [fraud]}}{keys}
"""  # fmt: skip
    return f"""
models:
  fraud:
    card: {ROOT / "models" / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://upstream.invalid", timeout_ms: 2000}}
    data_quality: {{enabled: false}}
{section if auth else ""}"""


async def answer(upstream: Upstream, body: bytes, headers: Mapping[str, str], s: float) -> bytes:
    return ANSWER


async def shadow_answer(upstream: Upstream, body: bytes) -> bytes:
    return ANSWER


def service(auth: bool, folder: Path) -> PredictionService:
    config = parse_config(config_text(auth), folder / "gateway.yaml")
    metrics = GatewayMetrics()
    ladder_metrics = LadderMetrics(metrics.registry)
    auth_metrics = AuthMetrics(metrics.registry)
    tracer = TracerProvider().get_tracer("auth-cost")

    def rebuild(new: Any, old: Any) -> Any:
        return build_runtime(new, time.monotonic, ladder_metrics, old, auth_metrics)

    return PredictionService(
        rebuild(config, None),
        build_runtime=rebuild,
        ladder=Ladder(answer, tracer, metrics, ladder_metrics, time.monotonic),
        enricher=None,
        shadows=ShadowDispatcher(shadow_answer),
        probe=lambda upstream, seconds: asyncio.sleep(0, True),
        metrics=metrics,
        tracer=tracer,
        clock=time.monotonic,
    )


def v2_body() -> bytes:
    card = json.loads((ROOT / "models" / "fraud-v1" / "model-card.json").read_text())
    inputs = []
    for spec in card["inputs"]:
        value = ROW[spec["name"]]
        value = float(value) if spec["datatype"].startswith("FP") else value
        inputs.append({"name": spec["name"], "datatype": spec["datatype"], "shape": [1, 1],
                       "data": [value]})  # fmt: skip
    return orjson.dumps({"inputs": inputs})


def headers(key: str | None) -> Headers:
    """Headers as Starlette hands them over, the key's last (a linear scan finds it)."""
    raw = [(b"host", b"gateway:8080"), (b"user-agent", b"bench/1"), (b"accept", b"*/*"),
           (b"content-type", b"application/json"), (b"content-length", b"512")]  # fmt: skip
    if key is not None:
        raw.append((b"authorization", f"Bearer {key}".encode()))
    return Headers(raw=raw)


async def serve_all(gateway: PredictionService, body: bytes, count: int, sent: Headers) -> float:
    """Seconds per request, serving ``count`` requests one after another."""
    tracer = gateway.tracer

    async def read(limit: int) -> bytes:
        return body

    started = time.perf_counter()
    for _ in range(count):
        call = PredictionCall("v2", "fraud", None, sent, read, time.monotonic())
        with tracer.start_as_current_span("request") as span:
            await gateway.predict(call, span)
    return (time.perf_counter() - started) / count


def calls_us(gateway: PredictionService, count: int) -> dict[str, float]:
    """Microseconds per call of the check alone: admitted, refused, and without auth."""
    table = gateway.runtime.auth
    assert table is not None
    valid, missing, wrong = headers(KEY), headers(None), headers("not-a-key")
    span = gateway.tracer.start_span("calls")

    def refuse(sent: Headers) -> None:
        with contextlib.suppress(Unauthenticated):
            table.admit(sent, "fraud", span)

    runtime_without = type("R", (), {"auth": None})()

    def check_without() -> None:
        if runtime_without.auth is not None:
            raise AssertionError

    def admit() -> None:
        table.admit(valid, "fraud", span)

    figures = {
        "admit_valid_key_us": timeit.timeit(admit, number=count),
        "refuse_no_key_us": timeit.timeit(lambda: refuse(missing), number=count),
        "refuse_wrong_key_us": timeit.timeit(lambda: refuse(wrong), number=count),
        "check_without_auth_us": timeit.timeit(check_without, number=count),
    }
    span.end()
    return {name: round(seconds / count * 1e6, 3) for name, seconds in figures.items()}


def measure(
    requests: int = 3000, chunk: int = 100, rounds: int = 5, timed_calls: int = 100_000
) -> dict[str, Any]:
    """Both figures of the module docstring, as a JSON-able report."""
    body = v2_body()
    with tempfile.TemporaryDirectory() as folder:
        arms = {"auth_off": service(False, Path(folder)), "auth_on": service(True, Path(folder))}
        sent = {"auth_off": headers(None), "auth_on": headers(KEY)}
        paired: list[float] = []
        per_arm: dict[str, list[float]] = {name: [] for name in arms}

        async def turns() -> None:
            for name, arm in arms.items():  # warm-up
                await serve_all(arm, body, 300, sent[name])
            for round_ in range(rounds):
                for _ in range(max(1, requests // chunk)):
                    order: Sequence[str] = ["auth_off", "auth_on"][:: 1 if round_ % 2 else -1]
                    got = {n: await serve_all(arms[n], body, chunk, sent[n]) * 1e6 for n in order}
                    paired.append(got["auth_on"] - got["auth_off"])
                    for name, value in got.items():
                        per_arm[name].append(value)

        asyncio.run(turns())
        calls = calls_us(arms["auth_on"], timed_calls)
    medians = {name: statistics.median(values) for name, values in per_arm.items()}
    added = statistics.median(paired)
    return {
        "requests_per_arm": requests * rounds,
        "pairs": len(paired),
        "pipeline_us_per_request": {k: round(v, 2) for k, v in medians.items()},
        "added_us_per_request": round(added, 2),
        "added_us_quartiles": [round(q, 2) for q in statistics.quantiles(paired, n=4)],
        "added_share_of_pipeline": round(added / medians["auth_off"], 4),
        **calls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per arm and round")
    parser.add_argument("--chunk", type=int, default=100, help="requests per turn")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the requests")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.requests, args.chunk, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
