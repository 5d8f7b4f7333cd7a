"""The per-model feature plan, compiled once per config load from the card and the config.

It says which feature refs to fetch for which entity key, each feature's max-age budget,
and which features may fall back to the card's default. Example, for the demo's ``fraud``::

    FeaturePlan(model="fraud", entity_key="customer_id",
                refs=("customer_stats:avg_amount_30d", ...),
                features=(PlannedFeature("avg_amount_30d", "customer_stats:avg_amount_30d",
                                         max_age=86400.0, default=54.79, ...), ...))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.contracts.card import ModelCard
from gateway.contracts.v1 import field_reader

if TYPE_CHECKING:  # gateway.settings loads cards and checks plans with this module
    from gateway.settings.schema import ModelSettings


class PlanError(Exception):
    """The model's ``features:`` settings do not fit its card; ``problems`` = (path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PlannedFeature:
    name: str  # the card input (and v1 field) name
    ref: str  # the Feast ref fetched for it, view:feature
    max_age: float  # seconds; older values are stale
    default: Any  # the card's default in the field's JSON type; None: never defaulted
    read: Callable[[Any], Any]  # a store value in the field's JSON type, or None if it is not
    # Seconds a value read from the store is served from memory without a call; None: off.
    refresh_after: float | None = None


@dataclass(frozen=True, slots=True)
class FeaturePlan:
    model: str
    entity_key: str
    features: tuple[PlannedFeature, ...]
    refs: tuple[str, ...]  # unique, in card order: one store call fetches them all
    max_age: float  # the largest budget, the cache's eviction horizon
    # Every feature has a refresh_after: an entity whose values were all read recently
    # needs no store call (with one feature always fetched, every entity needs the call).
    read_through: bool = False


def compile_plan(
    model: str, settings: ModelSettings, card: ModelCard, store_configured: bool
) -> FeaturePlan | None:
    """The plan for ``model``, or ``None`` when its features come from the request.

    Raises :class:`PlanError` with key paths under ``models.<model>.features``.
    """
    config = settings.features
    where = f"models.{model}.features"
    feature_inputs = [i for i in card.inputs if i.source == "feature"]
    enabled = store_configured if config.enabled is None else config.enabled
    if not enabled or not feature_inputs:
        return None
    problems: list[tuple[str, str]] = []
    if not store_configured:
        problems.append((f"{where}.enabled", "needs a top-level feature_store section"))
    entity_key = config.entity_key or card.entity_key
    if not entity_key:
        problems.append((f"{where}.entity_key", "required: the card names no entity_key"))
    names = {i.name for i in feature_inputs}
    for key in sorted(set(config.feature_refs) - names):
        problems.append((f"{where}.feature_refs.{key}", f"not a feature input of the card: {sorted(names)}"))  # fmt: skip
    for key in sorted(set(config.no_defaults) - names):
        problems.append((f"{where}.no_defaults", f"{key!r} is not a feature input of the card"))
    features: list[PlannedFeature] = []
    for spec in feature_inputs:
        ref = config.feature_refs.get(spec.name) or spec.feature_ref
        if not ref:
            problems.append((f"{where}.feature_refs.{spec.name}", "required: the card gives no feature_ref"))  # fmt: skip
            continue
        view = ref.split(":", 1)[0]
        max_age = _most_specific(config.max_age_overrides, spec.name, ref, view)
        if max_age is None:
            max_age = config.max_age_seconds
        refresh_after = _most_specific(config.refresh_after_seconds, spec.name, ref, view)
        if refresh_after is not None and refresh_after > max_age:
            key = next(k for k in (spec.name, ref, view) if k in config.refresh_after_seconds)
            problems.append((f"{where}.refresh_after_seconds.{key}", f"{refresh_after:g} s is longer than the max age of {spec.name!r} ({max_age:g} s)"))  # fmt: skip
        allowed = config.on_missing == "defaults" and spec.name not in config.no_defaults
        read = field_reader(spec.kind)
        default = read(spec.default) if allowed and spec.default is not None else None
        features.append(
            PlannedFeature(
                spec.name,
                ref,
                max_age,
                default,
                read,
                refresh_after,
            )
        )
    known = names | {f.ref for f in features} | {f.ref.split(":", 1)[0] for f in features}
    for section in ("max_age_overrides", "refresh_after_seconds"):
        for key in sorted(set(getattr(config, section)) - known):
            problems.append((f"{where}.{section}.{key}", "names no feature input, ref or view of the card"))  # fmt: skip
    if problems:
        raise PlanError(problems)
    assert entity_key is not None
    refs = tuple(dict.fromkeys(f.ref for f in features))
    return FeaturePlan(
        model,
        entity_key,
        tuple(features),
        refs,
        max(f.max_age for f in features),
        read_through=all(f.refresh_after is not None for f in features),
    )


def _most_specific(by_key: dict[str, float], name: str, ref: str, view: str) -> float | None:
    """The value for an input ``name``, else its feature ``ref``, else its ``view``."""
    return by_key.get(name, by_key.get(ref, by_key.get(view)))
