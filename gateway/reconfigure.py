"""Applying a reloaded config to a running app: build everything new, then swap.

Requests in flight keep the runtime and predictor they started with (each is replaced
by one assignment). An upstream whose settings did not change keeps its guard (breaker,
bulkhead, retry budget) and a shadow keeps its running comparison, so a reload that only
moves a canary weight resets nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

from gateway.resilience.guards import GuardKey, UpstreamGuard, build_guard
from gateway.runtime import build_runtime
from gateway.settings.loader import ConfigError, ConfigProblem, LoadedConfig
from gateway.settings.schema import ModelSettings, UpstreamSettings
from gateway.state import AppState
from gateway.telemetry.ladder_metrics import LadderMetrics

log = logging.getLogger("gateway.reload")


def _guard_settings(model: ModelSettings, upstream: UpstreamSettings) -> tuple[object, ...]:
    """Everything a guard is built from; equal tuples mean the guard can be kept."""
    # The canary's weight is routing, not the guard's business.
    endpoint = upstream.model_dump(exclude={"weight"})
    return (endpoint, model.breaker, model.timeouts, model.retries, model.bulkhead)


def rebuild_guards(
    old: Mapping[GuardKey, UpstreamGuard],
    old_config: LoadedConfig,
    new_config: LoadedConfig,
    clock: Callable[[], float],
    metrics: LadderMetrics | None,
) -> dict[GuardKey, UpstreamGuard]:
    guards: dict[GuardKey, UpstreamGuard] = {}
    for name, settings in new_config.settings.models.items():
        before = old_config.settings.models.get(name)
        for upstream in (settings.primary, settings.canary):
            if upstream is None:
                continue
            key = (name, upstream.name)
            kept = old.get(key)
            previous = _previous_upstream(before, upstream.name) if before else None
            if (
                kept is not None
                and before is not None
                and previous is not None
                and _guard_settings(before, previous) == _guard_settings(settings, upstream)
            ):
                guards[key] = kept
            else:
                guards[key] = build_guard(name, settings, upstream, clock, metrics)
    return guards


def _previous_upstream(model: ModelSettings, name: str) -> UpstreamSettings | None:
    for upstream in (model.primary, model.canary):
        if upstream is not None and upstream.name == name:
            return upstream
    return None


def apply_config(
    state: AppState,
    config: LoadedConfig,
    clock: Callable[[], float],
    metrics: LadderMetrics | None,
) -> None:
    """Swap ``config`` in, or raise :class:`ConfigError` and leave everything as it was."""
    old = state.runtime
    try:
        runtime = build_runtime(config, previous=old)
    except Exception as exc:  # e.g. the fallback ONNX model cannot be opened
        raise ConfigError(
            str(config.source), [ConfigProblem("", f"cannot be applied: {exc}")]
        ) from exc
    if config.settings.feature_store != old.config.settings.feature_store:
        log.warning("feature_store settings changed; they take effect after a restart")
    predictor = state.predictor
    if predictor is not None:
        guards = rebuild_guards(predictor.guards, old.config, config, clock, metrics)
        state.predictor = dataclasses.replace(predictor, guards=guards)
    state.runtime = runtime
