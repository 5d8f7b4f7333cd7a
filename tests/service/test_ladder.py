"""The degradation ladder in process: a fake transport, a fake clock, a fake backoff sleep.

Every rung and every reason it fails, the breaker, retries (what is retried, what is not,
the retry budget's cap), the deadline and its reserve, and the output contract, driven
through :meth:`Ladder.serve` with a real :class:`ModelRuntime` built from a config.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import FakeClock
from fakes import fraud_answer as answer
from ladder_support import FALLBACK_SHA256, ladder_config
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from support import MODELS

from gateway.contracts.card import load_card
from gateway.contracts.problems import OutputViolation
from gateway.contracts.samples import sample_infer_request
from gateway.errors import (
    BulkheadFull,
    FallbackFailed,
    GatewayError,
    InvalidInput,
    LadderExhausted,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.fallback.onnx_model import columns_from_v2
from gateway.provenance import FeatureSource, Provenance, RoutedVariant
from gateway.resilience.deadline import Deadline
from gateway.resilience.guards import GuardedUpstream
from gateway.service.ladder import Ladder, LadderRequest
from gateway.service.runtime import ModelRuntime, build_runtime
from gateway.settings import load_config
from gateway.settings.schema import ModelSettings
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream.client import Upstream

URL = "http://127.0.0.1:9"
REPLICA_URL = "http://127.0.0.2:9"
UPSTREAM = "fraud-v1"
FALLBACK = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
DEFAULT = "    default_response: {score: 0.05}\n"
# A breaker that never opens within a test, unless a test asks for one that does.
PATIENT = "    breaker: {consecutive_failures: 1000}\n"
DOC = sample_infer_request(load_card(MODELS / "fraud-v1"), "ladder")
BODY = orjson.dumps(DOC)
SKIP = "features unavailable: the feature store is not open"


OK = answer()


@dataclass(frozen=True)
class Takes:
    """A transport reply that first spends ``seconds`` on the fake clock."""

    seconds: float
    reply: bytes | GatewayError


Reply = bytes | GatewayError | Takes


@dataclass(frozen=True)
class Call:
    upstream: str
    body: bytes
    headers: Mapping[str, str]
    timeout: float


class FakeTransport:
    """Replies from ``script`` in order, then ``otherwise``; records every call."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.script: list[Reply] = []
        self.otherwise: Reply = OK
        self.calls: list[Call] = []

    async def __call__(
        self,
        upstream: Upstream,
        body: bytes,
        headers: Mapping[str, str],
        timeout_seconds: float,
    ) -> bytes:
        self.calls.append(Call(upstream.name, body, dict(headers), timeout_seconds))
        await asyncio.sleep(0)
        reply = self.script.pop(0) if self.script else self.otherwise
        if isinstance(reply, Takes):
            self.clock.now += reply.seconds
            reply = reply.reply
        if isinstance(reply, GatewayError):
            raise reply
        return reply

    @property
    def upstreams(self) -> list[str]:
        return [c.upstream for c in self.calls]


class FakeSleep:
    """The backoff sleep: records each pause and spends it on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.clock.now += seconds


class Jitter(random.Random):
    """Backoff jitter pinned to the bottom (0) or the top of its range."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


INPUTS = [i["name"] for i in DOC["inputs"]]


def columns() -> dict[str, list[Any]]:
    return columns_from_v2(DOC, INPUTS)


def without_hour() -> dict[str, list[Any]]:
    """The request's columns missing ``hour``, which the fallback model needs."""
    return {k: v for k, v in columns().items() if k != "hour"}


def request(
    *,
    body: bytes | None = BODY,
    skip_reason: str | None = None,
    source: FeatureSource = "none",
    cols: Callable[[], Mapping[str, Sequence[Any]]] = columns,
) -> LadderRequest:
    return LadderRequest(body, 1, cols, None, skip_reason, source)


@dataclass
class Rig:
    """A ladder over a real runtime of the fraud model, with fakes for time and I/O."""

    clock: FakeClock
    transport: FakeTransport
    sleep: FakeSleep
    metrics: GatewayMetrics
    ladder_metrics: LadderMetrics
    model: ModelRuntime
    target: GuardedUpstream
    ladder: Ladder
    tracer: Tracer
    exporter: InMemorySpanExporter
    settings: ModelSettings
    parents: list[ReadableSpan] = field(default_factory=list)

    def deadline(self, seconds: float | None = None, reserve: float | None = None) -> Deadline:
        """The request's deadline as the pipeline sets it (total, reserve if a lower rung)."""
        if reserve is None:
            reserve = self.target.reserve_seconds if self.model.has_lower_rung else 0.0
        total = self.target.total_seconds if seconds is None else seconds
        return Deadline.after(total, self.clock, reserve)

    def serve(
        self,
        req: LadderRequest | None = None,
        *,
        variant: RoutedVariant = "primary",
        deadline: Deadline | None = None,
    ) -> tuple[dict[str, Any], Provenance]:
        parent = self.tracer.start_span("request")
        try:
            return asyncio.run(
                self.ladder.serve(
                    self.model,
                    req or request(),
                    self.target,
                    variant,
                    deadline or self.deadline(),
                    parent,
                )
            )
        finally:
            parent.end()
            self.parents.append(self.exporter.get_finished_spans()[-1])

    def events(self, name: str) -> list[dict[str, Any]]:
        """The attributes of the last request span's events called ``name``."""
        return [dict(e.attributes or {}) for e in self.parents[-1].events if e.name == name]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"model": "fraud", **labels})
        return value or 0.0

    def retries(self, result: str) -> float:
        return self.metric("gateway_upstream_retries_total", upstream=UPSTREAM, result=result)

    def served(self, rung: str) -> float:
        return self.metric("gateway_served_by_total", rung=rung)

    def with_replicas(self, *urls: str) -> None:
        """Guard a copy of the primary that also has ``urls`` as replicas."""
        upstream = self.settings.primary.model_copy(update={"replicas": urls})
        self.target = GuardedUpstream.build(
            "fraud", self.settings, upstream, self.clock, self.ladder_metrics
        )


def make_rig(tmp_path: Path, extra: str = "") -> Rig:
    config = load_config(ladder_config(tmp_path, URL, extra))
    clock = FakeClock()
    metrics = GatewayMetrics()
    ladder_metrics = LadderMetrics(metrics.registry)
    runtime = build_runtime(config, clock, ladder_metrics)
    model = runtime.models["fraud"]
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    transport, sleep = FakeTransport(clock), FakeSleep(clock)
    ladder = Ladder(transport, tracer, metrics, ladder_metrics, clock, sleep)
    return Rig(
        clock, transport, sleep, metrics, ladder_metrics, model, model.router.primary, ladder,
        tracer, exporter, config.settings.models["fraud"],
    )  # fmt: skip


# --- the upstream rung ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["primary", "canary"])
def test_the_upstream_serves_as_the_routed_variant_by_its_endpoint(
    tmp_path: Path, variant: RoutedVariant
) -> None:
    """The answer is the upstream's; the provenance names the variant passed and endpoint."""
    rig = make_rig(tmp_path, FALLBACK + DEFAULT)
    served, provenance = rig.serve(variant=variant)
    assert provenance == Provenance(variant, UPSTREAM, degraded=False, feature_source="none")
    assert served == orjson.loads(OK)
    [call] = rig.transport.calls
    assert (call.upstream, call.body) == (UPSTREAM, BODY)
    assert call.headers["traceparent"].startswith("00-")
    assert rig.served(variant) == 1
    assert rig.served("fallback") == rig.served("default") == 0
    assert rig.metric("gateway_upstream_requests_total", upstream=UPSTREAM, outcome="ok") == 1


@pytest.mark.parametrize(
    ("source", "degraded"), [("none", False), ("live", False), ("cache", True), ("defaults", True)]
)
def test_the_feature_source_passes_through_and_cache_or_defaults_degrade(
    tmp_path: Path, source: FeatureSource, degraded: bool
) -> None:
    rig = make_rig(tmp_path, FALLBACK)
    _, provenance = rig.serve(request(source=source))
    assert provenance == Provenance("primary", UPSTREAM, degraded, source)


# --- the lower rungs --------------------------------------------------------------------


def test_the_fallback_serves_after_an_upstream_failure(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + DEFAULT)
    rig.transport.otherwise = UpstreamTimeout(UPSTREAM, "no answer within 2 s")
    served, provenance = rig.serve(request(source="live"))
    assert provenance == Provenance("fallback", "fallback:onnx", degraded=True, feature_source="none")  # fmt: skip
    assert served["model_version"] == "fallback"
    outputs = {o["name"]: o for o in served["outputs"]}
    assert outputs["probabilities"]["shape"] == [1, 2] and outputs["label"]["shape"] == [1]
    assert rig.served("fallback") == 1 and rig.served("primary") == 0
    assert rig.metric(
        "gateway_rung_failures_total", rung=UPSTREAM, outcome="upstream_timeout"
    ) == 1  # fmt: skip
    assert rig.target.last_failure == "upstream 'fraud-v1': no answer within 2 s"
    assert rig.events("gateway.rung_failed") == [
        {"rung": UPSTREAM, "reason": "upstream 'fraud-v1': no answer within 2 s"}
    ]
    assert rig.events("gateway.rung") == [{"rung": "fallback"}]


def test_the_default_serves_when_no_fallback_is_configured(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, DEFAULT)
    rig.transport.otherwise = UpstreamStatusError(UPSTREAM, 500, "boom")
    served, provenance = rig.serve()
    assert provenance == Provenance("default", "fallback:default", degraded=True, feature_source="none")  # fmt: skip
    assert {o["name"]: o["data"] for o in served["outputs"]} == {
        "label": [0],
        "probabilities": [0.95, 0.05],
    }
    assert rig.served("default") == 1
    assert rig.events("gateway.rung") == [{"rung": "default"}]


def test_the_default_serves_when_the_fallback_fails(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + DEFAULT)
    rig.transport.otherwise = UpstreamStatusError(UPSTREAM, 500, "boom")
    _, provenance = rig.serve(request(cols=without_hour))
    assert provenance.variant == "default" and provenance.served_by == "fallback:default"
    assert rig.metric(
        "gateway_rung_failures_total", rung="fallback", outcome="fallback_failed"
    ) == 1  # fmt: skip
    assert rig.served("fallback") == 0 and rig.served("default") == 1


def test_exhausted_names_why_each_rung_failed(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK)
    rig.transport.otherwise = UpstreamStatusError(UPSTREAM, 500, "boom")
    with pytest.raises(LadderExhausted) as caught:
        rig.serve(request(cols=without_hour))
    assert caught.value.reasons == [
        (UPSTREAM, "upstream 'fraud-v1': HTTP 500: boom"),
        ("fallback:onnx", "the request has no input 'hour'"),
        ("fallback:default", "not configured"),
    ]
    assert caught.value.message == (
        "model 'fraud' cannot be served: fraud-v1: upstream 'fraud-v1': HTTP 500: boom; "
        "fallback:onnx: the request has no input 'hour'; fallback:default: not configured"
    )
    assert rig.served("none") == 1


def test_a_fallback_error_of_its_own_is_a_rung_failure(tmp_path: Path) -> None:
    """The fallback's FallbackFailed is absorbed as that rung's reason, never raised."""
    rig = make_rig(tmp_path, FALLBACK)
    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")

    def broken() -> dict[str, list[Any]]:
        raise FallbackFailed("the request has no input 'amount'")

    with pytest.raises(LadderExhausted, match="fallback:onnx: the request has no input 'amount'"):
        rig.serve(request(cols=broken))


# --- a request that cannot use the upstream ---------------------------------------------


def test_a_skipped_upstream_is_not_called_and_the_fallback_serves(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + DEFAULT)
    _, provenance = rig.serve(request(body=None, skip_reason=SKIP))
    assert provenance.variant == "fallback"
    assert rig.transport.calls == []
    assert rig.target.budget.balance == rig.target.budget.capacity  # nothing deposited
    assert rig.metric("gateway_rung_failures_total", rung=UPSTREAM, outcome="unavailable") == 0


@pytest.mark.parametrize(("skip", "reason"), [(SKIP, SKIP), (None, "not usable")])
def test_a_skipped_upstream_with_no_lower_rung_exhausts_naming_the_skip(
    tmp_path: Path, skip: str | None, reason: str
) -> None:
    rig = make_rig(tmp_path)
    with pytest.raises(LadderExhausted) as caught:
        rig.serve(request(body=None, skip_reason=skip))
    assert caught.value.reasons == [
        (UPSTREAM, reason),
        ("fallback:onnx", "not configured"),
        ("fallback:default", "not configured"),
    ]
    assert rig.transport.calls == []


# --- what is never absorbed -------------------------------------------------------------


def test_a_client_error_is_raised_never_retried_nor_counted_by_the_breaker(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, FALLBACK + DEFAULT + "    breaker: {consecutive_failures: 1}\n")
    rig.transport.otherwise = InvalidInput("model server 'fraud-v1' refused the request: bad")
    for _ in range(3):
        with pytest.raises(InvalidInput):
            rig.serve()
    assert rig.transport.upstreams == [UPSTREAM] * 3  # one attempt each
    assert rig.sleep.pauses == []
    assert rig.retries("sent") == rig.retries("budget_exhausted") == 0
    assert rig.target.breaker.state == "closed" and rig.target.breaker.failures == 0
    assert rig.target.last_failure is None
    assert sum(rig.served(r) for r in ("primary", "fallback", "default", "none")) == 0
    assert rig.metric(
        "gateway_upstream_requests_total", upstream=UPSTREAM, outcome="invalid_input"
    ) == 3  # fmt: skip


def test_without_lower_rungs_the_upstream_error_propagates(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.transport.otherwise = UpstreamStatusError(UPSTREAM, 500, "boom")
    with pytest.raises(UpstreamStatusError, match="HTTP 500: boom"):
        rig.serve()
    assert rig.metric(
        "gateway_rung_failures_total", rung=UPSTREAM, outcome="upstream_bad_response"
    ) == 1  # fmt: skip
    assert rig.served("none") == 0


def test_a_full_bulkhead_falls_to_the_fallback(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + "    bulkhead: {max_concurrent: 1, max_queue: 0}\n")
    assert rig.target.bulkhead.try_acquire()  # another request holds the only slot
    _, provenance = rig.serve()
    assert provenance.variant == "fallback"
    assert rig.transport.calls == []
    assert rig.metric("gateway_bulkhead_rejections_total", upstream=UPSTREAM) == 1
    assert rig.target.bulkhead.active == 1  # the slot it never took is not released


def test_a_full_bulkhead_set_to_reject_propagates_despite_lower_rungs(tmp_path: Path) -> None:
    rig = make_rig(
        tmp_path,
        FALLBACK + DEFAULT + "    bulkhead: {max_concurrent: 1, max_queue: 0, when_full: reject}\n",
    )
    assert rig.target.bulkhead.try_acquire()
    with pytest.raises(BulkheadFull):
        rig.serve()
    assert rig.transport.calls == []
    assert rig.served("fallback") == rig.served("default") == 0


# --- the breaker --------------------------------------------------------------------------


BREAKER = "    breaker: {consecutive_failures: 2, reset_timeout_seconds: 5}\n"


def test_an_open_breaker_skips_the_transport_and_the_fallback_serves(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + BREAKER)
    rig.transport.otherwise = UpstreamTimeout(UPSTREAM, "no answer")
    rig.serve()
    rig.serve()
    assert rig.target.breaker.state == "open"
    assert len(rig.transport.calls) == 2

    _, provenance = rig.serve()
    assert provenance.variant == "fallback"
    assert len(rig.transport.calls) == 2  # no call made
    assert rig.metric("gateway_rung_failures_total", rung=UPSTREAM, outcome="circuit_open") == 1
    [event] = rig.events("gateway.rung_failed")
    assert event["reason"].startswith("circuit 'fraud/fraud-v1' is open")
    assert rig.target.last_failure == "upstream 'fraud-v1': no answer"  # not the refusal


def test_after_the_reset_timeout_a_half_open_trial_goes_through(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + BREAKER)
    rig.transport.script = [UpstreamTimeout(UPSTREAM, "no answer")] * 2
    rig.serve()
    rig.serve()
    rig.clock.now += 4.9
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 2

    rig.clock.now += 0.1
    _, provenance = rig.serve()
    assert provenance == Provenance("primary", UPSTREAM, degraded=False, feature_source="none")
    assert len(rig.transport.calls) == 3
    assert rig.target.breaker.state == "closed"
    moves = {
        state: rig.metric(
            "gateway_upstream_breaker_transitions_total", upstream=UPSTREAM, state=state
        )
        for state in ("open", "half_open", "closed")
    }
    assert moves == {"open": 1, "half_open": 1, "closed": 1}
    [event] = rig.events("gateway.breaker.state_change")
    assert (event["from"], event["to"]) == ("half_open", "closed")


def test_a_failed_half_open_trial_opens_it_again(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + BREAKER)
    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")
    rig.serve()  # two attempts (a retry): two consecutive failures, open
    assert rig.target.breaker.state == "open"
    rig.clock.now += 5
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 3  # the one trial, not retried on an open breaker
    assert rig.target.breaker.state == "open"
    assert rig.target.breaker.trip_reason == "a half-open trial call failed"


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable(UPSTREAM, "connection refused"),
        UpstreamStatusError(UPSTREAM, 502, "bad gateway"),
        UpstreamStatusError(UPSTREAM, 503, "unavailable"),
    ],
    ids=["connection", "502", "503"],
)
def test_a_retryable_failure_is_retried_once_after_a_backoff_pause(
    tmp_path: Path, error: GatewayError
) -> None:
    rig = make_rig(tmp_path, FALLBACK)
    rig.target.random = Jitter(top=True)
    rig.transport.script = [error]
    _, provenance = rig.serve()
    assert provenance == Provenance("primary", UPSTREAM, degraded=False, feature_source="none")
    assert rig.transport.upstreams == [UPSTREAM, UPSTREAM]
    assert rig.sleep.pauses == [pytest.approx(0.005)]  # the top of the first step (5 ms)
    assert rig.retries("sent") == 1
    attempts = [
        s.attributes.get("gateway.attempt") if s.attributes else None
        for s in rig.exporter.get_finished_spans()
        if s.name == f"infer {UPSTREAM}"
    ]
    assert attempts == [None, 2]


def test_a_retry_that_fails_again_stops_at_max_attempts(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + "    retries: {max_attempts: 3}\n" + PATIENT)
    rig.target.random = Jitter(top=True)
    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 3
    assert rig.sleep.pauses == [pytest.approx(0.005), pytest.approx(0.010)]  # base * 2^(n-1)
    assert rig.retries("sent") == 2


def test_one_attempt_means_no_retry(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + "    retries: {max_attempts: 1}\n")
    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 1 and rig.sleep.pauses == []


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeout(UPSTREAM, "no answer within 2 s"),
        UpstreamStatusError(UPSTREAM, 500, "internal error"),
        UpstreamStatusError(UPSTREAM, 404, "no such model"),
        OutputViolation(UPSTREAM, ["probabilities: out of range"]),
    ],
    ids=["timeout", "unlisted-500", "unlisted-404", "output-violation"],
)
def test_a_failure_that_is_not_retryable_is_tried_once(tmp_path: Path, error: GatewayError) -> None:
    """Timeouts spent their time already; unlisted statuses and bad answers are not retried."""
    rig = make_rig(tmp_path, FALLBACK)
    rig.transport.script = [error]  # a retry would succeed, and must not happen
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 1
    assert rig.sleep.pauses == []
    assert rig.retries("sent") == rig.retries("budget_exhausted") == 0
    assert rig.target.budget.retries == 0


def test_the_retried_statuses_are_the_configured_ones(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + "    retries: {retry_on_statuses: [500]}\n")
    rig.transport.script = [UpstreamStatusError(UPSTREAM, 500, "internal error")]
    assert rig.serve()[1].variant == "primary"
    rig.transport.script = [UpstreamStatusError(UPSTREAM, 502, "bad gateway")]
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 3  # 500 retried, 502 not


def test_with_replicas_the_retry_goes_to_the_other_endpoint(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK)
    rig.with_replicas(REPLICA_URL)
    rig.transport.script = [UpstreamUnavailable(UPSTREAM, "refused")]
    _, provenance = rig.serve()
    assert provenance.served_by == "fraud-v1#2"
    assert rig.transport.upstreams == [UPSTREAM, "fraud-v1#2"]


def test_with_replicas_an_open_endpoint_is_passed_over(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + "    breaker: {consecutive_failures: 1}\n")
    rig.with_replicas(REPLICA_URL)
    rig.transport.script = [UpstreamTimeout(UPSTREAM, "no answer")]
    assert rig.serve()[1].variant == "fallback"  # fraud-v1 fails once (a timeout): open
    rig.serve()
    rig.serve()
    assert rig.transport.upstreams == [UPSTREAM, "fraud-v1#2", "fraud-v1#2"]


# --- the retry budget ---------------------------------------------------------------------


BUDGET = "    retries: {budget_percent: 20, min_retries: 0}\n"


def test_a_quiet_period_banks_no_more_retries_than_the_bucket_holds(tmp_path: Path) -> None:
    """100 successes earn 20 retries' worth, but the bucket holds one; a burst of failing
    requests then gets at most one retry per five requests (20%)."""
    rig = make_rig(tmp_path, FALLBACK + BUDGET + PATIENT)
    for _ in range(100):
        rig.serve()
    assert rig.target.budget.balance == pytest.approx(1.0)  # capped at capacity

    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")
    burst = 20
    for _ in range(burst):
        rig.serve()
    sent = rig.retries("sent")
    assert sent <= burst * 20 / 100 + rig.target.budget.capacity
    assert sent == 4  # requests 1, 6, 11, 16 of the burst
    assert rig.retries("budget_exhausted") == burst - sent
    assert len(rig.transport.calls) == 100 + burst + sent
    assert len(rig.sleep.pauses) == sent


def test_retries_of_a_cold_start_are_capped_by_min_retries(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + PATIENT + "    retries: {budget_percent: 0, min_retries: 2}\n")  # fmt: skip
    rig.transport.otherwise = UpstreamUnavailable(UPSTREAM, "refused")
    for _ in range(5):
        assert rig.serve()[1].variant == "fallback"
    assert rig.retries("sent") == 2
    assert rig.retries("budget_exhausted") == 3
    assert len(rig.transport.calls) == 5 + 2


# --- deadlines ------------------------------------------------------------------------------


TIMEOUTS = "    timeouts: {total_ms: 1000, per_try_ms: 300, fallback_reserve_ms: 100}\n"


def test_each_attempt_gets_the_smaller_of_per_try_and_the_usable_deadline(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, FALLBACK + TIMEOUTS)
    rig.target.random = Jitter(top=False)  # no pause
    rig.transport.script = [Takes(0.7, UpstreamUnavailable(UPSTREAM, "refused"))]
    assert rig.serve()[1].variant == "primary"
    # 1.0 s total - 0.1 s reserve: 0.9 s usable; the first try spent 0.7 s of it
    assert [c.timeout for c in rig.transport.calls] == [pytest.approx(0.3), pytest.approx(0.2)]


def test_a_shorter_deadline_shortens_the_attempt(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + TIMEOUTS)
    rig.serve(deadline=rig.deadline(0.25))  # a client asked for 250 ms
    assert [c.timeout for c in rig.transport.calls] == [pytest.approx(0.15)]


def test_no_time_before_the_reserve_skips_the_upstream_and_the_fallback_serves(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, FALLBACK + TIMEOUTS)
    deadline = rig.deadline()
    rig.clock.now += 0.9  # e.g. a slow feature lookup: only the reserve is left
    balance = rig.target.budget.balance
    _, provenance = rig.serve(deadline=deadline)
    assert provenance.variant == "fallback"
    assert rig.transport.calls == []
    assert deadline.remaining() == pytest.approx(0.1)  # served within the reserve
    assert rig.events("gateway.rung_failed") == [
        {
            "rung": UPSTREAM,
            "reason": "upstream 'fraud-v1': no time left for the upstream before the deadline",
        }
    ]
    assert rig.metric(
        "gateway_rung_failures_total", rung=UPSTREAM, outcome="upstream_timeout"
    ) == 1  # fmt: skip
    assert rig.target.budget.balance == balance  # a request never sent earns no retry
    assert rig.target.bulkhead.active == 0


def test_a_passed_deadline_without_lower_rungs_is_an_upstream_timeout(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, TIMEOUTS)
    deadline = rig.deadline()
    rig.clock.now += 1.0
    with pytest.raises(UpstreamTimeout, match="no time left"):
        rig.serve(deadline=deadline)
    assert rig.transport.calls == []


def test_a_backoff_pause_past_the_deadline_stops_the_retries(tmp_path: Path) -> None:
    rig = make_rig(
        tmp_path, FALLBACK + TIMEOUTS + "    retries: {backoff_base_ms: 500, backoff_max_ms: 500}\n"
    )
    rig.target.random = Jitter(top=True)  # a 500 ms pause
    rig.transport.script = [Takes(0.5, UpstreamUnavailable(UPSTREAM, "refused"))]
    assert rig.serve()[1].variant == "fallback"  # 0.4 s usable left: no room for the pause
    assert len(rig.transport.calls) == 1
    assert rig.sleep.pauses == []
    assert rig.retries("sent") == 0


def test_a_retry_stopped_by_the_deadline_spends_no_retry_budget(tmp_path: Path) -> None:
    """A retry the deadline stops is never sent, so it takes no token: the status page's
    ``retries`` agrees with ``gateway_upstream_retries_total{result="sent"}``, and the next
    real retry is not refused for it."""
    rig = make_rig(
        tmp_path, FALLBACK + TIMEOUTS + "    retries: {backoff_base_ms: 500, backoff_max_ms: 500}\n"
    )
    rig.target.random = Jitter(top=True)
    rig.transport.script = [Takes(0.5, UpstreamUnavailable(UPSTREAM, "refused"))]
    before = rig.target.budget.balance
    rig.serve()
    assert rig.retries("sent") == 0
    assert rig.target.budget.retries == 0
    budget = rig.target.budget
    assert budget.balance == pytest.approx(min(budget.capacity, before + budget.ratio))


# --- the output contract ------------------------------------------------------------------


def bad_probability() -> bytes:
    doc = orjson.loads(OK)
    doc["outputs"][1]["data"] = [-0.7, 1.7]
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("bad", "rule"), [(bad_probability(), "probability"), (answer(batch=2), "output_batch")]
)
def test_an_answer_breaking_the_output_contract_is_an_upstream_failure(
    tmp_path: Path, bad: bytes, rule: str
) -> None:
    rig = make_rig(tmp_path, FALLBACK + BREAKER)
    rig.transport.otherwise = bad
    assert rig.serve()[1].variant == "fallback"
    assert rig.metric("gateway_output_violations_total", upstream=UPSTREAM, rule=rule) == 1
    assert rig.metric(
        "gateway_upstream_requests_total", upstream=UPSTREAM, outcome="upstream_bad_response"
    ) == 1  # fmt: skip
    assert len(rig.transport.calls) == 1  # not retried
    assert "output contract" in (rig.target.last_failure or "")

    assert rig.serve()[1].variant == "fallback"
    assert rig.target.breaker.state == "open"  # two failures in a row trip it
    assert rig.serve()[1].variant == "fallback"
    assert len(rig.transport.calls) == 2  # the open breaker spares the upstream


# --- the canary cohorts of a rollout analysis -----------------------------------------------

ANALYSIS = """    canary:
      name: fraud-v2
      url: http://127.0.0.1:8002
      analysis: {steps: [10], interval_seconds: 60}
"""


def test_a_canary_under_analysis_has_its_cohorts_outcomes_counted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, FALLBACK + DEFAULT + PATIENT + ANALYSIS)
    cohorts = rig.model.cohorts
    assert cohorts is not None
    rig.serve(variant="canary")
    rig.transport.script = [UpstreamTimeout(UPSTREAM, "slow")]
    rig.serve(variant="canary")  # the fallback answers the canary's cohort
    rig.transport.script = [OutputViolation(UPSTREAM, ["probabilities: NaN"])]
    rig.serve(variant="canary")
    rig.serve(request(body=None, skip_reason=SKIP), variant="canary")
    rig.serve(variant="primary")
    canary, primary = cohorts.canary, cohorts.primary
    assert (canary.requests, canary.errors, canary.violations, canary.lower_rung) == (4, 2, 1, 3)
    assert (primary.requests, primary.errors, primary.lower_rung) == (1, 0, 0)


def test_a_model_without_analysis_has_no_cohorts(tmp_path: Path) -> None:
    assert make_rig(tmp_path, FALLBACK + DEFAULT).model.cohorts is None
