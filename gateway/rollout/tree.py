"""What every rollout edit shares: finding a model's canary in the round-trip tree, the
promotion swap, and applying a change through :func:`gateway.rollout.yaml_edit.edit`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.rollout.yaml_edit import edit, swap_fields
from gateway.settings.loader import ConfigError
from gateway.settings.schema import UpstreamSettings

# Every field describing an upstream endpoint moves with it on promote (replicas too: left
# behind, they would round-robin the new primary's traffic to the old model); ``weight``
# is the canary slot's share of traffic, not the endpoint's, and stays put, as does the
# canary slot's ``analysis`` (the rollout that led to the promotion).
UPSTREAM_KEYS = tuple(key for key in UpstreamSettings.model_fields if key != "weight")


class RolloutError(Exception):
    """A rollout command that cannot be carried out; nothing was written."""


def model_of(tree: Any, model: str) -> Any:
    models = tree.get("models") or {}
    if model not in models:
        raise RolloutError(f"unknown model {model!r}; the config has {sorted(models)}")
    return models[model]


def canary_of(tree: Any, model: str) -> Any:
    canary = model_of(tree, model).get("canary")
    if canary is None:
        raise RolloutError(f"model {model!r} has no canary; add a 'canary:' upstream first")
    return canary


def tidy(weight: float) -> float | int:
    return int(weight) if float(weight).is_integer() else weight


def promote_tree(tree: Any, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Swap the primary and the canary (weight 0); the names before and after."""
    entry = model_of(tree, model)
    primary, canary = entry["primary"], canary_of(tree, model)
    before = {"primary": primary.get("name"), "canary": canary.get("name")}
    swap_fields(primary, canary, UPSTREAM_KEYS)
    canary["weight"] = 0
    return before, {"primary": primary.get("name"), "canary": canary.get("name")}


def apply(config: Path, change: Callable[[Any], None]) -> tuple[str, str]:
    """Edit ``config`` with ``change``; :class:`RolloutError` when nothing could be written."""
    try:
        return edit(config, change)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise RolloutError(
            f"the change would make the config invalid, nothing written: {problems}"
        ) from exc
    except OSError as exc:
        raise RolloutError(f"cannot edit {config}: {exc.strerror or exc}") from exc
