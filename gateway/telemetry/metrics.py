"""Prometheus metric families, one registry per app, label children bound once.

Binding ``.labels(...)`` per request costs ~2 us more than reusing a bound child
(measured here), so children are looked up in plain dicts and created on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

Api = str  # "v1" | "v2"

# Upper bounds for a gateway in front of tiny models: sub-millisecond up to seconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.0,
    2.5,
    5.0,
)


SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(slots=True)
class _Bound:
    count: Counter
    duration: Histogram


@dataclass
class GatewayMetrics:
    """The families the gateway exports at ``/metrics``."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        self.requests = Counter(
            "gateway_requests",
            "Prediction requests answered, by model, API and outcome.",
            ["model", "api", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time from the request's arrival to its answer, by model, API and outcome.",
            ["model", "api", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "gateway_upstream_requests",
            "Calls to model servers, by upstream and outcome.",
            ["model", "upstream", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_duration_seconds",
            "Duration of calls to model servers, by upstream and outcome.",
            ["model", "upstream", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._requests: dict[tuple[str, str, str], _Bound] = {}
        self._upstreams: dict[tuple[str, str, str], _Bound] = {}
        # Labels are bounded: the field is one of the model's inputs or a fixed request part
        # (see gateway.contracts.problems), the rule one of its RULES.
        self.rejections = Counter(
            "gateway_rejections",
            "Requests refused by the input contract, by model, field and rule broken.",
            ["model", "field", "rule"],
            registry=self.registry,
        )
        self.output_violations = Counter(
            "gateway_output_violations",
            "Upstream answers breaking the output contract, by model, upstream and rule.",
            ["model", "upstream", "rule"],
            registry=self.registry,
        )
        self._rejections: dict[tuple[str, str, str], Counter] = {}
        self._output_violations: dict[tuple[str, str, str], Counter] = {}
        self.variant_seconds = Histogram(
            "gateway_variant_duration_seconds",
            "Time to answer a prediction, by model and the variant that served it.",
            ["model", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "gateway_score",
            "Scores served, by model and variant: the score distribution of each variant.",
            ["model", "variant"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self._variants: dict[tuple[str, str], tuple[Histogram, Histogram]] = {}
        self.reloads = Counter(
            "gateway_config_reloads",
            "Config reloads, by result (applied or rejected).",
            ["result"],
            registry=self.registry,
        )

    def observe_served(self, model: str, variant: str, seconds: float, scores: list[float]) -> None:
        """One answer's latency and its scores, for the variant that served it."""
        key = (model, variant)
        bound = self._variants.get(key)
        if bound is None:
            bound = self._variants[key] = (
                self.variant_seconds.labels(*key),
                self.scores.labels(*key),
            )
        bound[0].observe(seconds)
        for score in scores:
            bound[1].observe(score)

    def count_reload(self, applied: bool) -> None:
        self.reloads.labels("applied" if applied else "rejected").inc()

    def observe_request(self, model: str, api: Api, outcome: str, seconds: float) -> None:
        key = (model, api, outcome)
        bound = self._requests.get(key)
        if bound is None:
            bound = self._requests[key] = _Bound(
                self.requests.labels(*key), self.request_seconds.labels(*key)
            )
        bound.count.inc()
        bound.duration.observe(seconds)

    def observe_upstream(self, model: str, upstream: str, outcome: str, seconds: float) -> None:
        key = (model, upstream, outcome)
        bound = self._upstreams.get(key)
        if bound is None:
            bound = self._upstreams[key] = _Bound(
                self.upstream_requests.labels(*key), self.upstream_seconds.labels(*key)
            )
        bound.count.inc()
        bound.duration.observe(seconds)

    def count_rejection(self, model: str, field: str, rule: str) -> None:
        key = (model, field, rule)
        child = self._rejections.get(key)
        if child is None:
            child = self._rejections[key] = self.rejections.labels(*key)
        child.inc()

    def count_output_violation(self, model: str, upstream: str, rule: str) -> None:
        key = (model, upstream, rule)
        child = self._output_violations.get(key)
        if child is None:
            child = self._output_violations[key] = self.output_violations.labels(*key)
        child.inc()
