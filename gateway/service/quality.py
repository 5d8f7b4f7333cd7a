"""The data-quality monitors outside a request: the refresh timer, and the scrape.

Requests only append to the monitors' windows (:mod:`gateway.quality.monitors`); the
arithmetic runs here, every ``data_quality.refresh_seconds``, over the running runtime's
models. The metrics are read from the last verdicts at scrape time, like the traffic
figures (:mod:`.traffic_metrics`): nothing on the request path sets a gauge.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.quality.monitors import STATUS_LEVEL, ModelQuality
from gateway.service.runtime import Runtime

log = logging.getLogger("gateway.quality")


async def refresh_forever(
    current: Callable[[], Runtime],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Refresh each model's verdicts when its ``refresh_seconds`` are up, until cancelled."""
    # When each model's monitors are due; one rebuilt by a reload is due at once.
    due: weakref.WeakKeyDictionary[ModelQuality, float] = weakref.WeakKeyDictionary()
    while True:
        now = clock()
        pause = 1.0
        for model in current().models.values():
            quality = model.quality
            if quality is None:
                continue
            every = quality.settings.refresh_seconds
            if due.get(quality, 0.0) <= now:
                before = quality.critical_store_inputs()
                try:
                    quality.refresh()
                except Exception:  # a bug here must not stop the timer for every model
                    log.exception("data-quality refresh of model %r failed", model.name)
                after = quality.critical_store_inputs()
                if before != after:
                    log.warning(
                        "model %r: critical store features %s -> %s (on_critical: %s)",
                        model.name,
                        before,
                        after,
                        quality.settings.on_critical,
                    )
                due[quality] = now + every
            pause = min(pause, every)
        await sleep(pause)


class QualityCollector(Collector):
    """The monitors' last verdicts, for the runtime ``current()`` returns, at every scrape."""

    def __init__(self, current: Callable[[], Runtime]) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "gateway_input_psi",
            "Population stability index of an input's recent window against training.",
            labels=["model", "input"],
        )
        status = GaugeMetricFamily(
            "gateway_input_status",
            "Data-quality status of an input: 0 ok, 1 warning, 2 critical.",
            labels=["model", "input"],
        )
        score_psi = GaugeMetricFamily(
            "gateway_score_psi",
            "Population stability index of served scores against training, by variant.",
            labels=["model", "variant"],
        )
        unusual = CounterMetricFamily(
            "gateway_input_out_of_distribution",
            "Values outside what the model saw in training (served, flagged), by input.",
            labels=["model", "input"],
        )
        for name, model in self.current().models.items():
            quality = model.quality
            if quality is None:
                continue
            for input_name, figures in quality.inputs.items():
                labels = [name, input_name]
                if figures.psi is not None:
                    psi.add_metric(labels, figures.psi)
                if figures.status in STATUS_LEVEL:  # no_baseline: nothing to judge by
                    status.add_metric(labels, STATUS_LEVEL[figures.status])
                unusual.add_metric(labels, quality.out_of_distribution[input_name])
            for variant, figures in quality.scores.items():
                if figures.psi is not None:
                    score_psi.add_metric([name, variant], figures.psi)
        yield from (psi, status, score_psi, unusual)
