"""One scrape for every worker of ``gateway serve --workers N``.

With several workers, prometheus-client runs in multiprocess mode (the supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` before it spawns a worker, see :mod:`gateway.server`): every
counter, histogram and gauge a worker updates is written to a memory-mapped file of its
own in that folder. The worker answering ``/metrics`` reads all the files with
:class:`MultiProcessCollector`: counters and histograms are summed over the workers (dead
ones included, so a restart never makes a counter go down) and each gauge is merged as
its ``multiprocess_mode`` says (see the gauges' declarations).

The families computed at scrape time from the running state (canary weights, shadow
comparisons, data-quality verdicts: :mod:`gateway.service.traffic_metrics`,
:mod:`gateway.service.quality`) are not in the files: they come from the worker that
answered. The canary weight is the config's, the same in every worker; the shadow counts
and data-quality windows are that worker's own share of the traffic.

A single-process gateway never comes here: its ``/metrics`` renders its own registry as
before, with no files and no per-scrape folder reads.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector


class FleetCollector(Collector):
    """Every worker's file-backed families, then this worker's scrape-time families.

    A family found in the files is taken from there only: this worker's own copy of it is
    one of the files already, and rendering both would count it twice.
    """

    def __init__(self, own: CollectorRegistry, metrics_dir: str) -> None:
        self.own = own
        self.files = MultiProcessCollector(None, metrics_dir)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        shared = list(self.files.collect())  # type: ignore[no-untyped-call]
        yield from shared
        names = {family.name for family in shared}
        for family in self.own.collect():
            if family.name not in names:
                yield family


def fleet_exposition(own: CollectorRegistry, metrics_dir: str) -> bytes:
    """The text exposition of every worker's metrics, read now from ``metrics_dir``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(own, metrics_dir))
    return generate_latest(registry)
