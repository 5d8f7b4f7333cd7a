"""Canary weights and shadow comparisons, read from the running state at scrape time.

A custom collector rather than gauges set on the request path: the figures live on the
shadow targets already, and a scrape is the only moment anyone reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.service.runtime import Runtime


class TrafficCollector(Collector):
    """Reads the runtime ``current()`` returns (the running one) at every scrape."""

    def __init__(self, current: Callable[[], Runtime]) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        runtime = self.current()
        weight = GaugeMetricFamily(
            "gateway_canary_weight_percent", "Configured canary share, by model.", labels=["model"]
        )
        requests = CounterMetricFamily(
            "gateway_shadow_requests",
            "Shadow copies, by model, shadow and result "
            "(sent, dropped when the queue was full, failed, compared, skipped_breaker_open).",
            labels=["model", "shadow", "result"],
        )
        gauges = {
            name: GaugeMetricFamily(f"gateway_shadow_{name}", text, labels=["model", "shadow"])
            for name, text in (
                ("label_agreement", "Share of rows where shadow and served labels agree."),
                ("mean_abs_diff", "Mean absolute difference of shadow and served scores."),
                ("max_abs_diff", "Largest absolute difference of shadow and served scores."),
                ("psi", "Population stability index of shadow vs served scores (window)."),
            )
        }
        for name, model in runtime.models.items():
            weight.add_metric([name], model.router.split.weight if model.router.canary else 0.0)
            for shadow in model.shadows:
                target = shadow.target
                labels = [name, target.upstream.name]
                counts = target.counts
                for result, value in (
                    ("sent", counts.sent),
                    ("dropped", counts.dropped),
                    ("failed", counts.failed),
                    ("compared", counts.compared),
                    ("skipped_breaker_open", counts.skipped_open),
                ):
                    requests.add_metric([*labels, result], value)
                figures = target.comparison.as_dict()
                for key, family in gauges.items():
                    value = figures[key]
                    if value is not None:
                        family.add_metric(labels, value)
        yield weight
        yield requests
        yield from gauges.values()
