"""The prediction pipeline both APIs share, once.

:meth:`PredictionService.predict` takes a :class:`PredictionCall` (what an API codec hands
over: which API and model, the headers, a way to read the body, the arrival time) and
returns a :class:`Prediction` (the answer, its provenance, the rows' scores), in this
order, for v1 and v2 alike:

0. **admit** the caller when the config has API keys (:mod:`.auth`): a request without a
   valid key, for a model its key may not call, or over its key's rate is refused before
   anything below, its body unread;
1. **decode and validate** the body against the model's contract (:mod:`.inputs`); a
   refused request is counted per field and rule and never goes further. Values the
   model never saw in training are flagged (or, per ``contract.out_of_distribution``,
   refused or sent to the fallback), the store's as well once they are known;
2. **route**: the sticky canary split picks the variant and its guarded upstream;
3. **one deadline** from the request's arrival: the upstream's total budget, or less when
   the client asks, keeping the fallback's reserve;
4. **enrich** the rows that name entities from the feature store, within that deadline;
   features that cannot be had send the request down the ladder (or, without lower rungs,
   answer ``features_unavailable``);
5. **the ladder** (:mod:`.ladder`): upstream, fallback model, default, 503;
6. **record** the latency and scores per variant, feed the data-quality monitors
   (:mod:`gateway.quality`; their verdicts can send requests to the fallback, per
   ``data_quality.on_critical``), and **offer shadows** a copy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, Tracer

from gateway.contracts.problems import ContractViolation
from gateway.errors import FeaturesUnavailable, PayloadTooLarge
from gateway.features.enrichment import Enricher, Enrichment, InstanceFeatures
from gateway.provenance import Provenance
from gateway.resilience.deadline import Deadline
from gateway.resilience.guards import GuardedUpstream
from gateway.routing.shadow import ShadowDispatcher
from gateway.service.inputs import Api, Rows, decode
from gateway.service.ladder import Ladder, LadderRequest
from gateway.service.runtime import ModelRuntime, Runtime
from gateway.settings.loader import ConfigError, ConfigProblem, LoadedConfig
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream.client import Upstream
from gateway.wire.binary import OutputForms

log = logging.getLogger("gateway.service")

# Reads the request body, refusing (PayloadTooLarge) past the given number of bytes.
BodyReader = Callable[[int], Awaitable[bytes]]
# Is this upstream ready? Answered within the given seconds.
ReadyProbe = Callable[[Upstream, float], Awaitable[bool]]
# A new runtime for a config, carrying over what it can from the running one.
RuntimeBuilder = Callable[[LoadedConfig, Runtime | None], Runtime]

# A readiness probe must answer quickly even when an upstream hangs.
READY_PROBE_SECONDS = 0.5
# An upstream's readiness is asked at most once a second (health checks come often).
READY_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class PredictionCall:
    """One prediction request as an API codec hands it over."""

    api: Api
    model: str
    version: str | None
    headers: Mapping[str, str]
    read_body: BodyReader
    arrived: float  # on the service's clock


@dataclass(frozen=True, slots=True)
class Prediction:
    """What served a request and what it answered; the codec shapes it for its API."""

    model: ModelRuntime
    answer: dict[str, Any]  # an OIP answer document from the rung that served
    provenance: Provenance
    # One {"score", "label"} per row; empty when the client asked for outputs without the score.
    predictions: list[dict[str, Any]]
    # Where each row's store features came from, when the serving upstream used them.
    features: list[InstanceFeatures] | None
    request_id: str | None
    # The outputs the client asked for as binary tensor data (None: all JSON).
    output_forms: OutputForms | None = None


class PredictionService:
    """The pipeline of the module docstring, over the running config's :class:`Runtime`.

    Built whole when the app starts; ``runtime`` is replaced whole by :meth:`apply` on a
    reload (requests in flight keep the one they started with).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        build_runtime: RuntimeBuilder,
        ladder: Ladder,
        enricher: Enricher | None,
        shadows: ShadowDispatcher,
        probe: ReadyProbe,
        metrics: GatewayMetrics,
        tracer: Tracer,
        clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.ladder = ladder
        self.enricher = enricher  # None: no feature store was configured at startup
        self.shadows = shadows
        self.metrics = metrics
        self.tracer = tracer
        self.clock = clock
        self._build_runtime = build_runtime
        self._probe = probe
        self._readiness: dict[str, tuple[float, bool]] = {}  # ready URL -> (asked at, ready)

    async def predict(self, call: PredictionCall, span: Span) -> Prediction:
        """Serve ``call``; raise a :class:`~gateway.errors.GatewayError` when it cannot be."""
        runtime = self.runtime
        if runtime.auth is not None:
            runtime.auth.admit(call.headers, call.model, span)
        model = runtime.model(call.model)
        model.check_version(call.version)
        try:
            body = await call.read_body(runtime.config.settings.server.max_body_bytes)
            rows = decode(call.api, model, body, call.headers)
            unusual = model.distribution.unusual(rows.columns())
            if unusual and model.out_of_distribution == "reject":
                raise model.distribution.refuse(list(unusual))
        except (ContractViolation, PayloadTooLarge) as exc:
            self._count_rejection(model, exc, span)
            raise
        batch = rows.batch
        if span.is_recording():
            span.set_attribute("gateway.batch_size", batch)

        router = model.router
        if router.splits:
            variant, target = router.route(call.headers, rows.routing_key(router))
        else:  # no canary is weighted: the primary, reading nothing
            variant, target = "primary", router.primary
        deadline = self._deadline(model, target, rows, call.arrived)

        enrichment, skip_reason = await self._enrich(model, rows, deadline, span)
        if enrichment is not None:  # the store's values: never the client's fault, so flagged
            unusual |= model.distribution.unusual(enrichment.columns)
        quality = model.quality
        if unusual:
            if quality is not None:
                quality.count_out_of_distribution(unusual)
            if model.out_of_distribution == "fallback" and skip_reason is None:
                skip_reason = f"inputs out of distribution: {', '.join(unusual)}"
        if skip_reason is None and quality is not None and quality.fallback_reason is not None:
            skip_reason = quality.fallback_reason  # on_critical: fallback
        request = LadderRequest(
            None if skip_reason else rows.upstream_body(enrichment.columns if enrichment else None),
            batch,
            rows.columns,
            rows.requested,
            skip_reason,
            enrichment.source if enrichment is not None else "none",
        )
        answer, provenance = await self.ladder.serve(
            model, request, target, variant, deadline, span
        )
        if unusual:
            provenance = provenance.with_warnings(tuple(unusual))
            if span.is_recording():
                span.set_attribute("gateway.input_warnings", list(unusual))

        scores = model.scores
        predictions = (
            scores.predictions(provenance.served_by, answer, batch)
            if rows.requested is None or scores.output in rows.requested
            else []
        )
        served_scores = [p["score"] for p in predictions]
        took = self.clock() - call.arrived
        self.metrics.observe_served(model.name, provenance.variant, took, served_scores)
        if model.cohorts is not None:  # a canary under analysis; scores of its own upstream
            model.cohorts.of(variant).answered(
                took, served_scores if provenance.variant == variant else ()
            )
        if quality is not None:
            quality.observe(rows.columns())
            if enrichment is not None:
                quality.observe(enrichment.columns)
                quality.observe_sources(enrichment.instances)
            quality.observe_scores(provenance.variant, served_scores)
        upstream_served = provenance.variant in ("primary", "canary")
        if upstream_served and predictions and model.shadows and request.body is not None:
            self.shadows.offer(
                model.shadows, request.body, served_scores, batch, span.get_span_context()
            )
        return Prediction(
            model,
            answer,
            provenance,
            predictions,
            enrichment.instances if enrichment is not None and upstream_served else None,
            rows.request_id,
            rows.output_forms,
        )

    def _deadline(
        self, model: ModelRuntime, target: GuardedUpstream, rows: Rows, arrived: float
    ) -> Deadline:
        """The request's one deadline, from its arrival: the upstream's total budget or the
        client's shorter one, keeping the reserve when an in-process rung can answer."""
        seconds = target.total_seconds
        if rows.client_timeout_ms is not None:
            seconds = min(seconds, rows.client_timeout_ms / 1000)
        reserve = target.reserve_seconds if model.has_lower_rung else 0.0
        return Deadline(arrived + seconds, self.clock, reserve)

    async def _enrich(
        self, model: ModelRuntime, rows: Rows, deadline: Deadline, span: Span
    ) -> tuple[Enrichment | None, str | None]:
        """The store's features for rows that name entities, and why the upstream cannot be
        used when they cannot be had (``None``: it can)."""
        plan, ids = model.features, rows.entity_ids
        if plan is None or ids is None:
            return None, None
        try:
            if self.enricher is None:
                raise FeaturesUnavailable(
                    "the feature store is not open; it opens when the gateway starts"
                )
            enrichment = await self.enricher.enrich(plan, ids, span, deadline.usable())
        except FeaturesUnavailable as exc:
            if not model.has_lower_rung:
                raise
            if span.is_recording():
                span.set_attribute("gateway.feature_source", "none")
            return None, exc.message  # the lower rungs need no store features
        if span.is_recording():
            span.set_attribute("gateway.feature_source", enrichment.source)
            span.set_attribute("gateway.feature_store.outcome", enrichment.store_outcome)
        return enrichment, None

    def _count_rejection(
        self, model: ModelRuntime, exc: ContractViolation | PayloadTooLarge, span: Span
    ) -> None:
        """Count a refused request per (field, rule) and name the rules on the span."""
        if isinstance(exc, PayloadTooLarge):
            labels = [("body", "max_body_bytes")]
        else:
            known = model.checker.fields
            if model.card.entity_key:
                known = known | {model.card.entity_key}
            labels = exc.labels(known)
        for field, rule in labels:
            self.metrics.count_rejection(model.name, field, rule)
        if span.is_recording():
            span.set_attribute("gateway.rejection.rules", sorted({rule for _, rule in labels}))
            span.set_attribute("gateway.rejection.fields", sorted({field for field, _ in labels}))

    async def ready(self, model: ModelRuntime) -> bool:
        """Ready while any rung can serve: an in-process rung always can, else the upstream
        primary's model-ready endpoint must say so (asked at most once a second)."""
        if model.has_lower_rung:
            return True
        upstream = model.router.primary.upstream
        now = self.clock()
        cached = self._readiness.get(upstream.ready_url)
        if cached is not None and now - cached[0] < READY_CACHE_SECONDS:
            return cached[1]
        ready = await self._probe(upstream, READY_PROBE_SECONDS)
        self._readiness[upstream.ready_url] = (now, ready)
        return ready

    def apply(self, config: LoadedConfig) -> None:
        """Swap in a runtime for ``config`` (one assignment), or raise :class:`ConfigError`
        and keep the running one."""
        old = self.runtime
        try:
            runtime = self._build_runtime(config, old)
        except Exception as exc:  # any failure (an ONNX file that cannot be opened...) refuses it
            raise ConfigError(
                str(config.source), [ConfigProblem("", f"cannot be applied: {exc}")]
            ) from exc
        if config.settings.feature_store != old.config.settings.feature_store:
            log.warning("feature_store settings changed; they take effect after a restart")
        self.runtime = runtime
