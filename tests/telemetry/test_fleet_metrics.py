"""One scrape over every worker: prometheus-client's multiprocess files, read by any worker.

The workers here are real processes started the way the supervisor starts them: with
``PROMETHEUS_MULTIPROC_DIR`` in their environment from the first line on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway.telemetry.fleet_metrics import fleet_exposition

WORKER = """
import os, sys
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics

ok, failed, breaker = (int(a) for a in sys.argv[1:])
metrics = GatewayMetrics()
ladder = LadderMetrics(metrics.registry)
for _ in range(ok):
    metrics.observe_request("fraud", "v2", "ok", 0.001)
for _ in range(failed):
    metrics.observe_request("fraud", "v2", "upstream_unavailable", 0.002)
ladder.breaker_state.labels("fraud", "fraud-v1").set(breaker)
print(os.getpid())
"""

# prometheus-client picks its value class when it is imported: a variable set afterwards
# changes nothing, which is why the supervisor sets it before it spawns a worker.
TOO_LATE = """
import os, sys
from gateway.telemetry.metrics import GatewayMetrics

os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
GatewayMetrics().observe_request("fraud", "v2", "ok", 0.001)
"""


def run_worker(metrics_dir: Path, ok: int, failed: int, breaker: int) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(ok), str(failed), str(breaker)],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return int(done.stdout)


class Weights(Collector):
    """A scrape-time family like the canary weights: only in the answering worker."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("gateway_canary_weight_percent", "weights", labels=["model"])
        family.add_metric(["fraud"], 10.0)
        yield family


def scrape(own: CollectorRegistry, metrics_dir: Path) -> dict[str, dict[str, float]]:
    """Sample name -> {sorted labels as text: value}."""
    text = fleet_exposition(own, str(metrics_dir)).decode()
    samples: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def answering_worker() -> CollectorRegistry:
    """The registry of the worker that answers: its scrape-time collectors and its own
    copy of a file-backed family (here in-process values, which must not be added)."""
    own = CollectorRegistry()
    own.register(Weights())
    Counter("gateway_requests", "own copy", ["model", "api", "outcome"], registry=own).labels(
        "fraud", "v2", "ok"
    ).inc(100)
    return own


def test_a_scrape_sums_every_workers_counters_and_keeps_scrape_time_families(
    tmp_path: Path,
) -> None:
    run_worker(tmp_path, ok=3, failed=0, breaker=0)
    run_worker(tmp_path, ok=2, failed=1, breaker=0)
    samples = scrape(answering_worker(), tmp_path)
    assert samples["gateway_requests_total"] == {
        "api=v2,model=fraud,outcome=ok": 5.0,
        "api=v2,model=fraud,outcome=upstream_unavailable": 1.0,
    }
    assert samples["gateway_request_duration_seconds_count"]["api=v2,model=fraud,outcome=ok"] == 5
    assert samples["gateway_canary_weight_percent"] == {"model=fraud": 10.0}


def test_a_breaker_gauge_shows_the_worst_live_worker_with_the_single_process_labels(
    tmp_path: Path,
) -> None:
    run_worker(tmp_path, ok=1, failed=0, breaker=0)
    tripped = run_worker(tmp_path, ok=1, failed=0, breaker=2)
    own = answering_worker()
    assert scrape(own, tmp_path)["gateway_upstream_breaker_state"] == {
        "model=fraud,upstream=fraud-v1": 2.0  # no pid label: alerts match as before
    }
    mark_process_dead(tripped, str(tmp_path))  # what the supervisor does when it dies
    after = scrape(own, tmp_path)
    assert after["gateway_upstream_breaker_state"] == {"model=fraud,upstream=fraud-v1": 0.0}
    assert after["gateway_requests_total"] == {"api=v2,model=fraud,outcome=ok": 2.0}


def test_the_folder_must_be_set_before_prometheus_client_is_imported(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", TOO_LATE, str(tmp_path)],
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        check=True, timeout=60,
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    run_worker(tmp_path, ok=1, failed=0, breaker=0)
    assert sorted(p.name.split("_")[0] for p in tmp_path.iterdir()) == [
        "counter",
        "gauge",
        "histogram",
    ]
