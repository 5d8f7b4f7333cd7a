"""What ``/admin/status`` shows of the running service: per model, which rungs can serve
now and why it is degraded, its breakers, bulkheads and retry budgets, its routing and its
shadows' paired comparison, and its data-quality verdicts."""

from __future__ import annotations

from typing import Any

from gateway.service.runtime import ModelRuntime, Runtime


def runtime_status(runtime: Runtime) -> dict[str, Any]:
    """Every model's status (:func:`model_status`) by name."""
    return {name: model_status(model) for name, model in runtime.models.items()}


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
