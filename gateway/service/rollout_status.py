"""``/admin/status``: ``models.<model>.rollout``, the automated rollout of its canary.

The run's state, step and reason come from the running config (the routing YAML is the
run's only state); the weight from the router; the last checks and why a step waits from
the analysis, which runs in one process (worker 0 of a fleet): the other workers show
``last_checks: null``, and the audit log has every judged interval's checks.
"""

from __future__ import annotations

from typing import Any

from gateway.service.runtime import ModelRuntime
from gateway.settings.schema import ModelSettings


def rollout_status(settings: ModelSettings, model: ModelRuntime) -> dict[str, Any] | None:
    """``{"state", "step", "steps", "weight", "failed_checks", "max_failed_checks",
    "last_checks", "waiting", "reason"}``; None when the model's canary has no analysis."""
    canary = settings.canary
    analysis = canary.analysis if canary is not None else None
    if analysis is None:
        return None
    cohorts = model.cohorts
    return {
        "state": analysis.state,
        "step": analysis.step,
        "steps": list(analysis.steps),
        "weight": model.router.split.weight,  # 0 without a canary
        "interval_seconds": analysis.interval_seconds,
        "failed_checks": analysis.failed_checks,
        "max_failed_checks": analysis.max_failed_checks,
        "last_checks": cohorts.last_checks if cohorts is not None else None,
        "waiting": cohorts.waiting if cohorts is not None else None,
        "reason": analysis.reason,
    }
