"""What ``/admin/status`` shows of the running service: per model, which rungs can serve
now and why it is degraded, its breakers, bulkheads and retry budgets, its routing and its
shadows' paired comparison, its data-quality verdicts and its request counters; and the
feature store's breaker and cache.

Counters are running totals since the process started: a reader (the operator page,
``/admin/ui``) turns two polls into rates.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from gateway.features.enrichment import Enricher
from gateway.service.pipeline import PredictionService
from gateway.service.rollout_status import rollout_status
from gateway.service.runtime import ModelRuntime


def service_status(service: PredictionService) -> dict[str, Any]:
    """``models`` (:func:`model_status` plus ``traffic``) and ``feature_store``.

    ``traffic`` holds this process's counters of the model: ``requests`` by outcome and
    ``served_by`` by rung (``primary``, ``canary``, ``fallback``, ``default``, ``none``).
    ``rollout`` is the canary's automated rollout (:mod:`.rollout_status`), or None.
    """
    requests = _counts(service.metrics.requests, "model", "outcome")
    served = _counts(service.ladder.ladder_metrics.served, "model", "rung")
    models = {}
    for name, model in service.runtime.models.items():
        models[name] = model_status(model)
        models[name]["traffic"] = {
            "requests": {outcome: n for (m, outcome), n in requests.items() if m == name},
            "served_by": {rung: n for (m, rung), n in served.items() if m == name},
        }
        models[name]["rollout"] = rollout_status(
            service.runtime.config.settings.models[name], model
        )
    return {"models": models, "feature_store": feature_store_status(service.enricher)}


def feature_store_status(enricher: Enricher | None) -> dict[str, Any] | None:
    """The store's breaker, the last-known-good cache's size, and where values were found
    (summed over models); None without a feature store."""
    if enricher is None:
        return None
    breaker, cache, metrics = enricher.breaker, enricher.cache, enricher.metrics
    client = enricher.client
    lookups = _counts(metrics.cache_lookups, "result")
    served = _counts(metrics.values_served, "source")
    return {
        "url": client.url,
        "breaker": {"state": breaker.state, "retry_in_seconds": round(breaker.retry_in(), 3)},
        "cache": {"entries": len(cache), "max_entries": cache.max_entries},
        "cache_lookups": {r: lookups.get((r,), 0) for r in ("hit", "miss", "expired")},
        "values_served": {s: served.get((s,), 0) for s in ("live", "cache", "defaults")},
        "retries": client.retries,
        "hedges": {"sent": client.hedges, "over_budget": client.hedges_over_budget},
    }


def _counts(family: Counter, *labels: str) -> dict[tuple[str, ...], int]:
    """A counter family's totals summed by the values of ``labels``."""
    counts: dict[tuple[str, ...], int] = {}
    for metric in family.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = tuple(sample.labels[label] for label in labels)
                counts[key] = counts.get(key, 0) + int(sample.value)
    return counts


def model_status(model: ModelRuntime) -> dict[str, Any]:
    """The rungs of one model, which can serve now, and why it is degraded if it is."""
    router = model.router
    primary = router.primary.status()
    canary = router.canary.status() if router.canary else None
    why: list[str] = []
    rungs: list[str] = []
    breaker = primary["breaker"]
    assert isinstance(breaker, dict)
    if breaker["state"] == "closed":
        rungs.append("primary")
    else:
        why.append(f"breaker {breaker['state']}: {breaker['trip_reason'] or 'no reason recorded'}")
    if model.fallback is not None:
        rungs.append("fallback")
    if model.default is not None:
        rungs.append("default")
    if canary is not None:
        canary_breaker = canary["breaker"]
        assert isinstance(canary_breaker, dict)
        if canary_breaker["state"] != "closed":
            why.append(
                f"canary {canary['upstream']} breaker {canary_breaker['state']}: "
                f"{canary_breaker['trip_reason'] or 'no reason recorded'}"
            )
    quality = model.quality
    if quality is not None and quality.fallback_reason is not None:
        why.append(f"data quality, requests sent to the fallback: {quality.fallback_reason}")
    return {
        "serving_rungs": rungs,
        "degraded": bool(why),
        "why": why,
        "primary": primary,
        "canary": canary,
        "fallback": (
            {"version": model.fallback.card.version, "run_in_thread": model.fallback.run_in_thread}
            if model.fallback
            else None
        ),
        "default": (
            {"score": model.default.score, "label": model.default.label} if model.default else None
        ),
        "routing": {
            "primary": router.primary.name,
            "canary": router.canary.name if router.canary else None,
            "canary_weight_percent": router.split.weight if router.canary else 0.0,
            "sticky_key": router.sticky_key,
            "sticky_header": router.sticky_header,
            "variant_override": router.allow_override,
        },
        "shadows": [shadow.as_dict() for shadow in model.shadows],
        "data_quality": quality.status() if quality is not None else None,
    }
