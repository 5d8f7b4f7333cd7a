"""The runtime state derived from one loaded config: built whole, then swapped whole.

Everything a request needs that can be computed from config is computed here, once:
upstream URLs, compiled input checkers, v1 decoders, score readers, metadata bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import orjson

from gateway import __version__
from gateway.contracts.card import ModelCard
from gateway.contracts.oip import InferChecker
from gateway.contracts.output_check import OutputChecker
from gateway.contracts.outputs import ScoreReader
from gateway.contracts.v1 import InstanceDecoder
from gateway.errors import ModelNotFound
from gateway.fallback.default import DefaultAnswer
from gateway.fallback.onnx_model import FallbackModel
from gateway.features.plan import FeaturePlan, compile_plan
from gateway.resilience.breaker import CircuitBreaker
from gateway.routing.comparison import PairedComparison
from gateway.routing.router import Router
from gateway.routing.shadow import ShadowCounts, ShadowTarget
from gateway.settings.loader import LoadedConfig
from gateway.upstream.client import Upstream


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
    # Which variant (primary or canary) serves a request.
    router: Router
    # Set when the model's `source: feature` inputs come from the feature store.
    features: FeaturePlan | None = None
    # The ladder's in-process rungs, built once per config load (None: not configured).
    fallback: FallbackModel | None = None
    default: DefaultAnswer | None = None
    # The shadows that get sampled copies of served requests.
    shadows: tuple[ShadowTarget, ...] = ()

    @property
    def primary(self) -> Upstream:
        """The primary upstream, as the router built it (one object per config load)."""
        return self.router.primary

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

    def model(self, name: str) -> ModelRuntime:
        runtime = self.models.get(name)
        if runtime is None:
            raise ModelNotFound(f"unknown model {name!r}; the gateway serves {sorted(self.models)}")
        return runtime


def build_runtime(config: LoadedConfig, previous: Runtime | None = None) -> Runtime:
    """Derive every request-time object from ``config``.

    With ``previous`` (a reload), a shadow that keeps its name and URL keeps its running
    comparison and counters.
    """
    models = {}
    store = config.settings.feature_store
    for name, settings in config.settings.models.items():
        card = config.cards[name]
        plan = compile_plan(name, settings, card, store_configured=store is not None)
        models[name] = ModelRuntime(
            name=name,
            card=card,
            checker=InferChecker.compile(
                card,
                settings.max_batch_size,
                settings.contract,
                config.settings.server.max_json_depth,
            ),
            decoder=InstanceDecoder.compile(
                card,
                settings.max_batch_size,
                store_features=plan is not None,
                entity_key=plan.entity_key if plan else None,
                contract=settings.contract,
                max_json_depth=config.settings.server.max_json_depth,
            ),
            scores=ScoreReader.compile(card),
            outputs=OutputChecker.compile(card, settings.contract),
            metadata_body=_model_metadata(name, card),
            features=plan,
            fallback=_fallback(config, name),
            default=(
                DefaultAnswer.compile(card, settings.default_response.score)
                if settings.default_response
                else None
            ),
            router=Router.compile(name, settings, card.entity_key),
            shadows=_shadows(name, config, card, previous),
        )
    server = orjson.dumps({"name": "gateway", "version": __version__, "extensions": []})
    return Runtime(config, MappingProxyType(models), server)


def _shadows(
    name: str, config: LoadedConfig, card: ModelCard, previous: Runtime | None
) -> tuple[ShadowTarget, ...]:
    old = {
        (t.upstream.name, t.upstream.infer_url): t
        for t in (previous.models[name].shadows if previous and name in previous.models else ())
    }
    targets = []
    for shadow in config.settings.models[name].shadows:
        upstream = Upstream.from_settings(shadow, default_model=name)
        kept = old.get((upstream.name, upstream.infer_url))
        targets.append(
            ShadowTarget(
                name,
                upstream,
                shadow.sample_percent,
                ScoreReader.compile(card),
                kept.comparison if kept else PairedComparison(threshold=card.score.threshold),
                kept.counts if kept else ShadowCounts(),
                kept.breaker if kept else _shadow_breaker(name, shadow.name),
            )
        )
    return tuple(targets)


def _shadow_breaker(model: str, shadow: str) -> CircuitBreaker:
    # Shadows never serve clients, so a plain consecutive-failure rule is enough.
    return CircuitBreaker(f"{model}/{shadow}", fail_max=5, reset_timeout=10.0)


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
