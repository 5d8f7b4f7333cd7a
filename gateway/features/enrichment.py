"""Feature enrichment: one store lookup per request, then live -> cache -> default per value.

For each instance and each planned feature the value comes from the first rung that has it:

1. ``live``: the store answered ``PRESENT`` with a value of the right type, within its
   max-age budget (the value is then written to the last-known-good cache);
2. ``cache``: the last-known-good value of that (entity, feature), within its budget;
3. ``defaults``: the card's default (training median or mode), where the plan allows it;
4. otherwise :class:`~gateway.errors.FeaturesUnavailable`: this model cannot serve the
   request (the fallback model's rung; until it exists, a 503).

With ``refresh_after_seconds`` set for every feature of a model (read-through freshness),
an entity whose values this gateway read from the store less than that long ago needs no
call: those values are served from memory as ``live`` (the store's answer, within the
operator's refresh interval); older ones are fetched again.

The store is skipped while its breaker is open (a :class:`RecoveryProbe` watches its health
endpoint meanwhile, so a healed store gets its trial lookup at once), and its failures (unreachable, timeout,
error status) only mean that no value is live. With a :class:`Coalescer` the lookups of
concurrent requests share store calls (``gateway/features/coalescer.py``); the breaker
then judges each store call, not each request. The request's feature source is the worst
rung used: ``live`` < ``cache`` < ``defaults``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from prometheus_client import Counter, Histogram

from gateway.contracts.feature_plan import FeaturePlan, PlannedFeature
from gateway.errors import CircuitOpen, FeatureStoreError, FeaturesUnavailable, outcome
from gateway.features.cache import CachedValue, LastKnownGood
from gateway.features.coalescer import Coalescer
from gateway.features.feast_client import FeatureValue
from gateway.features.freshness import age_seconds, is_fresh
from gateway.features.recovery_probe import RecoveryProbe
from gateway.provenance import FeatureSource
from gateway.resilience.breaker import CircuitBreaker
from gateway.settings.schema import CoalesceSettings
from gateway.telemetry.feature_metrics import FeatureMetrics

ValueSource = Literal["live", "cache", "defaults"]
_RANK: dict[str, int] = {"none": 0, "live": 1, "cache": 2, "defaults": 3}


def worst_source(sources: Sequence[str]) -> FeatureSource:
    """The most degraded of ``sources`` (``none`` when empty)."""
    return cast(FeatureSource, max(sources, key=_RANK.__getitem__, default="none"))


class FeatureLookup(Protocol):
    """The store seam: :class:`gateway.features.feast_client.FeastClient` in production."""

    url: str
    retries: int  # lookups sent again after a dropped connection
    hedges: int  # slow lookups sent a second time

    @property
    def hedges_over_budget(self) -> int:
        """Slow lookups not hedged: the hedge budget was spent."""
        ...

    async def online_features(
        self,
        refs: Sequence[str],
        entity_key: str,
        entity_ids: Sequence[str],
        within_seconds: float | None = None,
    ) -> dict[str, list[FeatureValue]]: ...

    async def healthy(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class InstanceFeatures:
    """Where one instance's features came from, for the v1 body."""

    source: FeatureSource  # the worst of ``sources``
    sources: dict[str, ValueSource]  # feature (input) name -> rung
    oldest_age_seconds: float | None  # of the live and cached values used; None if none
    # Features whose store value was too old to use (the cache or the default served).
    stale: frozenset[str] = frozenset()

    def body(self) -> dict[str, Any]:
        return {
            "feature_source": self.source,
            "sources": self.sources,
            "oldest_feature_age_seconds": self.oldest_age_seconds,
        }


@dataclass(frozen=True, slots=True)
class Enrichment:
    columns: dict[str, list[Any]]  # feature name -> one value per instance (JSON types)
    source: FeatureSource  # the worst rung used in the whole request
    instances: list[InstanceFeatures]
    store_outcome: str  # ok, circuit_open, feature_store_timeout, ...


@dataclass(slots=True)
class _ModelCounters:
    hits: Counter
    misses: Counter
    expired: Counter
    stale: Counter
    served: dict[str, Counter]
    ages: Histogram


class Enricher:
    """The store client, its breaker and the cache; one per app, used from one event loop."""

    def __init__(
        self,
        client: FeatureLookup,
        breaker: CircuitBreaker,
        cache: LastKnownGood,
        metrics: FeatureMetrics,
        tracer: Tracer,
        wall_clock: Callable[[], float],
        timer: Callable[[], float],
        coalesce: CoalesceSettings | None = None,
        probe_interval_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.cache = cache
        self.metrics = metrics
        self._tracer = tracer
        self._wall = wall_clock
        self._timer = timer
        self._counters: dict[str, _ModelCounters] = {}
        # OTel's server.address and server.port: the store's host and port, not its URL.
        parts = urlsplit(client.url)
        self._server = (
            parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        # While the breaker is open, the store's health endpoint tells when it is back.
        self.probe: RecoveryProbe | None = None
        if probe_interval_seconds is not None:
            self.probe = RecoveryProbe(client.healthy, breaker, probe_interval_seconds, timer,
                                       metrics.recovery_probes)  # fmt: skip
        self.coalescer: Coalescer | None = None
        if coalesce is not None and coalesce.enabled:
            self.coalescer = Coalescer(
                self._guarded_call,
                client.url,
                window_seconds=coalesce.window_ms / 1000,
                max_entities=coalesce.max_entities,
                max_calls_in_flight=coalesce.max_calls_in_flight,
            )

    async def enrich(
        self,
        plan: FeaturePlan,
        entity_ids: Sequence[str],
        parent: Span,
        within_seconds: float | None = None,
    ) -> Enrichment:
        """Feature values for ``entity_ids`` (one per instance, repeats allowed).

        Raises :class:`FeaturesUnavailable` naming the instance, entity and feature when a
        value has no live, fresh cached or allowed default value.
        """
        unique = list(dict.fromkeys(entity_ids))
        counters = self._model_counters(plan.model)
        remembered = self._remembered(plan, unique) if plan.read_through else {}
        to_fetch = [e for e in unique if e not in remembered] if remembered else unique
        fetched: dict[str, list[FeatureValue]] | None = None
        store_outcome = "not_needed"
        if to_fetch:
            fetched, store_outcome = await self._fetch(plan, to_fetch, parent, within_seconds)
        now = self._wall()
        resolved: dict[str, tuple[list[Any], InstanceFeatures]] = {}
        # Values served per rung, counted here and added once: a locked increment per
        # value was a visible share of a cached v1 prediction.
        tally: dict[ValueSource, int] = {}
        try:
            for entity, values in remembered.items():
                resolved[entity] = self._live_from_memory(plan, entity, values, now, counters)
                tally["live"] = tally.get("live", 0) + len(values)
            for index, entity in enumerate(to_fetch):
                live = (
                    None if fetched is None else {ref: col[index] for ref, col in fetched.items()}
                )
                resolved[entity] = self._resolve(
                    plan, entity, live, now, counters, store_outcome, tally
                )
        finally:
            for rung, count in tally.items():
                counters.served[rung].inc(count)
            if "cache" in tally:  # every value served from the cache was a fresh hit
                counters.hits.inc(tally["cache"])
        columns: dict[str, list[Any]] = {f.name: [] for f in plan.features}
        instances = []
        for entity in entity_ids:
            values, provenance = resolved[entity]
            for feature, value in zip(plan.features, values, strict=True):
                columns[feature.name].append(value)
            instances.append(provenance)
        source = worst_source([i.source for i in instances])
        return Enrichment(columns, source, instances, store_outcome)

    def _remembered(self, plan: FeaturePlan, entities: list[str]) -> dict[str, list[CachedValue]]:
        """The entities whose every planned value the store gave within its ``refresh_after``
        (and still within its max age): these need no store call."""
        now = self._wall()
        found: dict[str, list[CachedValue]] = {}
        for entity in entities:
            values = []
            for feature in plan.features:
                cached = self.cache.get(entity, feature.ref)
                if (
                    cached is None
                    or now - cached.read_at > cast(float, feature.refresh_after)
                    or not is_fresh(cached.event_time, now, feature.max_age)
                ):
                    break
                values.append(cached)
            else:
                found[entity] = values
        if found:
            self.metrics.read_through.labels(plan.model).inc(len(found))
        return found

    def _live_from_memory(
        self,
        plan: FeaturePlan,
        entity: str,
        values: list[CachedValue],
        now: float,
        counters: _ModelCounters,
    ) -> tuple[list[Any], InstanceFeatures]:
        """One entity's values as the store gave them within ``refresh_after``: ``live``."""
        oldest = 0.0
        for cached in values:
            age = age_seconds(cached.event_time, now)
            counters.ages.observe(age)
            oldest = max(oldest, age)
        sources: dict[str, ValueSource] = {f.name: "live" for f in plan.features}
        return [c.value for c in values], InstanceFeatures("live", sources, oldest)

    async def _fetch(
        self, plan: FeaturePlan, entity_ids: list[str], parent: Span, within: float | None
    ) -> tuple[dict[str, list[FeatureValue]] | None, str]:
        try:
            if self.coalescer is None:
                with self.breaker.calling():
                    return await self._call_store(plan, entity_ids, parent, within), "ok"
            if not self.breaker.allows_call():  # do not join a batch that will be refused
                raise CircuitOpen(self.breaker.name, self.breaker.retry_in())
            return await self.coalescer.lookup(plan, entity_ids, parent, within), "ok"
        except CircuitOpen as exc:
            self.metrics.skipped_calls.inc()
            if self.probe is not None:
                self.probe.poke()
            return None, outcome(exc)
        except FeatureStoreError as exc:
            return None, outcome(exc)

    async def _guarded_call(
        self, plan: FeaturePlan, entity_ids: list[str], parent: Span
    ) -> dict[str, list[FeatureValue]]:
        """One coalesced store call, judged by the breaker (the waiters keep their budgets)."""
        with self.breaker.calling():
            return await self._call_store(plan, entity_ids, parent, None)

    async def _call_store(
        self, plan: FeaturePlan, entity_ids: list[str], parent: Span, within: float | None
    ) -> dict[str, list[FeatureValue]]:
        span = self._tracer.start_span(
            "feast get-online-features", context=set_span_in_context(parent), kind=SpanKind.CLIENT
        )
        if span.is_recording():
            span.set_attribute("server.address", self._server[0])
            span.set_attribute("server.port", self._server[1])
            span.set_attribute("gateway.model", plan.model)
            span.set_attribute("gateway.feature_store.entity_count", len(entity_ids))
            span.set_attribute("gateway.feature_store.feature_count", len(plan.refs))
        result = "ok"
        started = self._timer()
        try:
            return await self.client.online_features(plan.refs, plan.entity_key, entity_ids, within)
        except FeatureStoreError as exc:
            result = outcome(exc)
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR, exc.message))
            raise
        finally:
            self.metrics.observe_store(result, self._timer() - started)
            if span.is_recording():
                span.set_attribute("gateway.feature_store.outcome", result)
            span.end()

    def _resolve(
        self,
        plan: FeaturePlan,
        entity: str,
        live: dict[str, FeatureValue] | None,
        now: float,
        counters: _ModelCounters,
        store_outcome: str,
        tally: dict[ValueSource, int],
    ) -> tuple[list[Any], InstanceFeatures]:
        values: list[Any] = []
        sources: dict[str, ValueSource] = {}
        oldest: float | None = None
        stale: list[str] = []
        for feature in plan.features:
            value, source, event_time = self._one(feature, entity, live, now, counters, stale)
            if source is None:
                reason = (
                    "missing in the store" if live is not None else f"not fetched ({store_outcome})"
                )
                raise FeaturesUnavailable(
                    f"model {plan.model!r}: feature {feature.name!r} of {plan.entity_key} "
                    f"{entity!r} is {reason}, has no fresh cached value within "
                    f"{feature.max_age:g} s and no default is allowed"
                )
            values.append(value)
            sources[feature.name] = source
            tally[source] = tally.get(source, 0) + 1
            if event_time is not None:
                age = age_seconds(event_time, now)
                counters.ages.observe(age)
                oldest = age if oldest is None else max(oldest, age)
        return values, InstanceFeatures(
            worst_source(list(sources.values())), sources, oldest, frozenset(stale)
        )

    def _one(
        self,
        feature: PlannedFeature,
        entity: str,
        live: dict[str, FeatureValue] | None,
        now: float,
        counters: _ModelCounters,
        stale: list[str],
    ) -> tuple[Any, ValueSource | None, float | None]:
        """(value, rung, event time) for one feature of one entity; rung None: no value.
        A store value too old to use adds the feature's name to ``stale``."""
        if live is not None:
            got = live[feature.ref]
            value = feature.read(got.value) if got.found else None
            if value is not None:
                if is_fresh(got.event_time, now, feature.max_age):
                    self.cache.put(entity, feature.ref, value, got.event_time, now)
                    return value, "live", got.event_time
                counters.stale.inc()
                stale.append(feature.name)
        cached = self.cache.get(entity, feature.ref)
        if cached is not None and is_fresh(cached.event_time, now, feature.max_age):
            return cached.value, "cache", cached.event_time  # a hit, counted by the caller
        (counters.misses if cached is None else counters.expired).inc()
        if feature.default is not None:
            return feature.default, "defaults", None
        return None, None, None

    def _model_counters(self, model: str) -> _ModelCounters:
        counters = self._counters.get(model)
        if counters is None:
            m = self.metrics
            counters = self._counters[model] = _ModelCounters(
                hits=m.cache_lookups.labels(model, "hit"),
                misses=m.cache_lookups.labels(model, "miss"),
                expired=m.cache_lookups.labels(model, "expired"),
                stale=m.stale_values.labels(model),
                served={s: m.values_served.labels(model, s) for s in ("live", "cache", "defaults")},
                ages=m.age_served.labels(model),
            )
        return counters
