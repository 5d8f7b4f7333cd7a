"""The runtime state derived from one loaded config: built whole, then swapped whole.

Everything a request needs that can be computed from config is computed here, once:
compiled input checkers, v1 decoders, score readers, metadata bodies, routers.

The per-upstream objects that hold state (a :class:`GuardedUpstream` with its breakers,
bulkhead and retry budget; a :class:`ShadowTarget` with its running comparison) follow one
rule across a reload: an object is kept when the settings it was built from (its
``spec``) are unchanged, else built new. So a reload that only moves a canary weight or a
shadow's sample percent resets nothing, and one that changes an upstream's URL or its
breaker rules starts that upstream afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar

import orjson
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.contracts.card import ModelCard
from gateway.contracts.distribution import DistributionCheck
from gateway.contracts.feature_plan import FeaturePlan, compile_plan
from gateway.contracts.oip import InferChecker
from gateway.contracts.oip_entities import EntityParameter
from gateway.contracts.output_check import OutputChecker
from gateway.contracts.outputs import ScoreReader
from gateway.contracts.v1 import InstanceDecoder
from gateway.errors import ModelNotFound
from gateway.fallback.default import DefaultAnswer
from gateway.fallback.onnx_model import FallbackModel
from gateway.quality.cohorts import CanaryCohorts
from gateway.quality.monitors import ModelQuality
from gateway.resilience.guards import GuardedUpstream, guard_spec
from gateway.routing.router import Router
from gateway.routing.shadow import Shadow, ShadowTarget, shadow_spec
from gateway.service.auth import KeyTable
from gateway.settings.loader import LoadedConfig
from gateway.settings.schema import ModelSettings, ShadowSettings, UpstreamSettings
from gateway.telemetry.auth_metrics import AuthMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.upstream.client import Upstream

# A card without training ranges or categories: nothing is unusual.
NO_DISTRIBUTION = DistributionCheck(())


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    """One served model and its compiled contract."""

    name: str
    card: ModelCard
    checker: InferChecker
    decoder: InstanceDecoder
    scores: ScoreReader
    outputs: OutputChecker
    metadata_body: bytes
    # Which variant (primary or canary) serves a request, and its guarded upstream.
    router: Router
    # Set when the model's `source: feature` inputs come from the feature store; then a
    # v2 request may name its entities in its parameters (`entities`).
    features: FeaturePlan | None = None
    entities: EntityParameter | None = None
    # What the model saw in training, and what an unusual value does.
    distribution: DistributionCheck = NO_DISTRIBUTION
    out_of_distribution: Literal["serve", "fallback", "reject"] = "serve"
    # The ladder's in-process rungs, built once per config load (None: not configured).
    fallback: FallbackModel | None = None
    default: DefaultAnswer | None = None
    # The shadows that get sampled copies of served requests.
    shadows: tuple[Shadow, ...] = ()
    # The data-quality monitors (None: ``data_quality.enabled: false``).
    quality: ModelQuality | None = None
    # Per-interval cohort figures for the canary's rollout analysis (None: no
    # ``canary.analysis``, and nothing is counted).
    cohorts: CanaryCohorts | None = None

    @property
    def has_lower_rung(self) -> bool:
        """True when an in-process rung can answer if the upstream cannot."""
        return self.fallback is not None or self.default is not None

    def check_version(self, version: str | None) -> None:
        if version is not None and version != self.card.version:
            raise ModelNotFound(
                f"model {self.name!r} has no version {version!r}; it has [{self.card.version!r}]"
            )


@dataclass(frozen=True, slots=True)
class Runtime:
    config: LoadedConfig
    models: MappingProxyType[str, ModelRuntime]
    server_metadata_body: bytes
    # The predict API keys (None: no ``auth:`` section, every request is served).
    auth: KeyTable | None = None

    def model(self, name: str) -> ModelRuntime:
        runtime = self.models.get(name)
        if runtime is None:
            raise ModelNotFound(f"unknown model {name!r}; the gateway serves {sorted(self.models)}")
        return runtime


def build_runtime(
    config: LoadedConfig,
    breaker_clock: Callable[[], float],
    metrics: LadderMetrics,
    previous: Runtime | None = None,
    auth_metrics: AuthMetrics | None = None,
) -> Runtime:
    """Derive every request-time object from ``config``.

    With ``previous`` (a reload), stateful per-upstream objects are carried over by the
    rule in the module docstring; new ones get breakers on ``breaker_clock``. API keys keep
    their token buckets (on ``breaker_clock`` too) by the same rule; their decisions are
    counted on ``auth_metrics`` (default: a registry of their own).
    """
    carried = _Carried(previous, breaker_clock, metrics)
    models = {name: _compile_model(config, name, carried) for name in config.settings.models}
    metadata = orjson.dumps({"name": "gateway", "version": __version__, "extensions": []})
    auth = None
    if config.auth is not None:
        auth = KeyTable.build(
            config.auth,
            previous.auth if previous is not None else None,
            breaker_clock,
            auth_metrics or AuthMetrics(CollectorRegistry()),
        )
    return Runtime(config, MappingProxyType(models), metadata, auth)


def _compile_model(config: LoadedConfig, name: str, carried: _Carried) -> ModelRuntime:
    settings = config.settings.models[name]
    card = config.cards[name]
    depth = config.settings.server.max_json_depth
    plan = compile_plan(name, settings, card, config.settings.feature_store is not None)
    entities = None
    if plan is not None:
        entities = EntityParameter(
            plan.entity_key,
            frozenset(f.name for f in plan.features),
            settings.max_batch_size,
            settings.contract.max_string_length,
            InferChecker.compile(
                card, settings.max_batch_size, settings.contract, depth, store_features=True
            ),
        )
    canary = settings.canary
    distribution = DistributionCheck.compile(card, settings.contract)
    fallback = _fallback(config, name)
    return ModelRuntime(
        name=name,
        card=card,
        checker=InferChecker.compile(card, settings.max_batch_size, settings.contract, depth),
        decoder=InstanceDecoder.compile(
            card,
            settings.max_batch_size,
            store_features=plan is not None,
            entity_key=plan.entity_key if plan else None,
            contract=settings.contract,
            max_json_depth=depth,
        ),
        scores=ScoreReader.compile(card),
        outputs=OutputChecker.compile(card, settings.contract),
        metadata_body=_model_metadata(name, card),
        router=Router.compile(
            name,
            settings,
            card.entity_key,
            primary=carried.upstream(name, settings, settings.primary),
            canary=carried.upstream(name, settings, canary) if canary else None,
        ),
        features=plan,
        entities=entities,
        distribution=distribution,
        out_of_distribution=settings.contract.out_of_distribution,
        fallback=fallback,
        default=(
            DefaultAnswer.compile(card, settings.default_response.score)
            if settings.default_response
            else None
        ),
        shadows=tuple(
            Shadow(carried.shadow(name, card, shadow), shadow.sample_percent)
            for shadow in settings.shadows
        ),
        quality=(
            carried.quality(name, card, settings, distribution, fallback)
            if settings.data_quality.enabled
            else None
        ),
        cohorts=carried.cohorts(name) if canary is not None and canary.analysis else None,
    )


_T = TypeVar("_T", GuardedUpstream, ShadowTarget)


class _Carried:
    """Builds the stateful per-upstream objects of a runtime, keeping the previous
    runtime's where their spec is unchanged (by model and upstream name)."""

    def __init__(
        self, previous: Runtime | None, clock: Callable[[], float], metrics: LadderMetrics
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._old: dict[tuple[str, str], GuardedUpstream | ShadowTarget] = {}
        self._quality: dict[str, ModelQuality] = {}
        self._cohorts: dict[str, CanaryCohorts] = {}
        for name, model in (previous.models if previous else {}).items():
            if model.quality is not None:
                self._quality[name] = model.quality
            if model.cohorts is not None:
                self._cohorts[name] = model.cohorts
            for guarded in (model.router.primary, model.router.canary):
                if guarded is not None:
                    self._old[(name, guarded.name)] = guarded
            for shadow in model.shadows:
                self._old[(name, shadow.target.upstream.name)] = shadow.target

    def upstream(
        self, model: str, settings: ModelSettings, upstream: UpstreamSettings
    ) -> GuardedUpstream:
        return self._keep(
            (model, upstream.name),
            guard_spec(settings, upstream),
            GuardedUpstream,
            lambda: GuardedUpstream.build(model, settings, upstream, self._clock, self._metrics),
        )

    def shadow(self, model: str, card: ModelCard, shadow: ShadowSettings) -> ShadowTarget:
        spec = shadow_spec(shadow)
        return self._keep(
            (model, shadow.name),
            spec,
            ShadowTarget,
            lambda: ShadowTarget.build(
                model,
                Upstream.from_settings(shadow, default_model=model),
                ScoreReader.compile(card),
                spec,
            ),
        )

    def quality(
        self,
        model: str,
        card: ModelCard,
        settings: ModelSettings,
        distribution: DistributionCheck,
        fallback: FallbackModel | None,
    ) -> ModelQuality:
        """The model's monitors; kept (windows and counts) while what they judge by is."""
        fallback_card = fallback.card if fallback is not None else None
        spec = (card, fallback_card, settings.data_quality, distribution)
        old = self._quality.get(model)
        if old is not None and old.spec == spec:
            return old
        return ModelQuality.build(
            model,
            card,
            settings.data_quality,
            distribution,
            fallback_card=fallback_card,
            spec=spec,
        )

    def cohorts(self, model: str) -> CanaryCohorts:
        """The model's canary cohorts, kept while it has a ``canary.analysis``: a rollout
        step is a reload, and the analysis decides itself when an interval starts afresh."""
        return self._cohorts.get(model) or CanaryCohorts()

    def _keep(
        self, key: tuple[str, str], spec: object, kind: type[_T], build: Callable[[], _T]
    ) -> _T:
        old = self._old.get(key)
        if isinstance(old, kind) and old.spec == spec:
            return old
        return build()


def _fallback(config: LoadedConfig, name: str) -> FallbackModel | None:
    """The fallback model's session, opened once; its artifact was verified at load."""
    settings = config.settings.models[name].fallback
    model_dir = config.fallback_dirs.get(name)
    if settings is None or model_dir is None:
        return None
    return FallbackModel.load(model_dir, run_in_thread=settings.run_in_thread)


def _model_metadata(name: str, card: ModelCard) -> bytes:
    return orjson.dumps(
        {
            "name": name,
            "versions": [card.version],
            "platform": card.platform,
            "inputs": [
                {"name": i.name, "datatype": i.datatype, "shape": list(i.shape)}
                for i in card.inputs
            ],
            "outputs": [
                {"name": o.name, "datatype": o.datatype, "shape": list(o.shape)}
                for o in card.outputs
            ],
        }
    )
