"""The key table: which key a request presents, the decision's order, metrics, reloads."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from support import write_card

from gateway.errors import Forbidden, RateLimited, Unauthenticated, http_status, outcome
from gateway.service.auth import KeyTable, presented_key
from gateway.service.runtime import Runtime, build_runtime
from gateway.settings import parse_config
from gateway.telemetry.auth_metrics import AuthMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics

CHECKOUT_KEY = "ck-secret-0123"
BATCH_KEY = "bt-secret-4567"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def config_text(checkout_rate: float = 2, checkout_models: str = "[toy]") -> str:
    return f"""
models:
  toy:
    card: toy-model
    primary: {{name: toy-v1, url: "http://127.0.0.1:9001"}}
  other:
    card: toy-model
    primary: {{name: other-v1, url: "http://127.0.0.1:9002"}}
auth:
  api_keys:
    - {{name: checkout, sha256: {sha(CHECKOUT_KEY)}, rate_per_second: {checkout_rate}, burst: 2, models: {checkout_models}}}
    - {{name: batch, sha256: {sha(BATCH_KEY)}}}
"""


class Built:
    def __init__(self, folder: Path) -> None:
        write_card(folder / "toy-model")
        self.folder = folder
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.auth_metrics = AuthMetrics(self.registry)
        self.ladder = LadderMetrics(CollectorRegistry())

    def runtime(self, text: str, previous: Runtime | None = None) -> Runtime:
        config = parse_config(text, self.folder / "gateway.yaml")
        return build_runtime(config, self.clock, self.ladder, previous, self.auth_metrics)

    def table(self, text: str | None = None, previous: Runtime | None = None) -> KeyTable:
        auth = self.runtime(text or config_text(), previous).auth
        assert auth is not None
        return auth

    def count(self, key: str, decision: str) -> float:
        value = self.registry.get_sample_value(
            "gateway_auth_decisions_total", {"key": key, "decision": decision}
        )
        return value or 0.0


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return Built(tmp_path)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": f"Bearer {CHECKOUT_KEY}"}, CHECKOUT_KEY),
        ({"authorization": f"bearer   {CHECKOUT_KEY}  "}, CHECKOUT_KEY),
        ({"x-api-key": CHECKOUT_KEY}, CHECKOUT_KEY),
        ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": CHECKOUT_KEY}, CHECKOUT_KEY),
        ({"authorization": "Bearer "}, None),
        ({"authorization": CHECKOUT_KEY}, None),
        ({"x-api-key": "  "}, None),
        ({}, None),
    ],
)
def test_the_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_a_valid_key_is_admitted_by_name(built: Built) -> None:
    table = built.table()
    assert table.admit({"authorization": f"Bearer {CHECKOUT_KEY}"}, "toy", None) == "checkout"
    assert table.admit({"x-api-key": BATCH_KEY}, "other", None) == "batch"
    assert built.count("checkout", "allowed") == 1
    assert built.count("batch", "allowed") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "wrong"},
        {"x-api-key": sha(CHECKOUT_KEY)},  # the hash is not the key
        {"authorization": f"Token {CHECKOUT_KEY}"},
        {"x-api-key": CHECKOUT_KEY + "x"},
        {"x-api-key": "ключ"},  # not latin-1: cannot have come off the wire
    ],
)
def test_no_valid_key_is_unauthenticated(built: Built, headers: dict[str, str]) -> None:
    table = built.table()
    with pytest.raises(Unauthenticated) as refused:
        table.admit(headers, "toy", None)
    assert http_status(refused.value) == 401
    assert outcome(refused.value) == "unauthenticated"
    assert refused.value.challenge.startswith("Bearer")
    assert built.count("<none>", "unauthenticated") == 1


def test_a_model_outside_the_keys_list_is_forbidden_and_takes_no_token(built: Built) -> None:
    table = built.table()
    headers = {"x-api-key": CHECKOUT_KEY}
    for _ in range(5):
        with pytest.raises(Forbidden) as refused:
            table.admit(headers, "other", None)
    assert http_status(refused.value) == 403
    assert refused.value.key == "checkout"
    assert "may not call model 'other'; it may call ['toy']" in refused.value.message
    # an unknown model is just another model the key may not call
    with pytest.raises(Forbidden):
        table.admit(headers, "nope", None)
    assert table.admit(headers, "toy", None) == "checkout"  # the bucket is still full
    assert built.count("checkout", "forbidden") == 6


def test_over_the_rate_is_rate_limited_with_whole_seconds_to_wait(built: Built) -> None:
    table = built.table(config_text(checkout_rate=0.25))  # burst 2, then one per 4 s
    headers = {"x-api-key": CHECKOUT_KEY}
    table.admit(headers, "toy", None)
    table.admit(headers, "toy", None)
    with pytest.raises(RateLimited) as refused:
        table.admit(headers, "toy", None)
    assert http_status(refused.value) == 429
    assert refused.value.retry_after_seconds == 4
    built.clock.now += 3.9
    with pytest.raises(RateLimited) as refused:
        table.admit(headers, "toy", None)
    assert refused.value.retry_after_seconds == 1  # 0.1 s left: rounded up, never 0
    built.clock.now += 0.1
    assert table.admit(headers, "toy", None) == "checkout"
    # the other key is not limited at all
    assert all(table.admit({"x-api-key": BATCH_KEY}, "toy", None) for _ in range(100))
    assert built.count("checkout", "rate_limited") == 2
    assert built.count("checkout", "allowed") == 3


def test_metrics_and_spans_carry_the_name_never_the_key(built: Built) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    table = built.table()
    for headers, model in [
        ({"x-api-key": CHECKOUT_KEY}, "toy"),
        ({"x-api-key": CHECKOUT_KEY}, "other"),
        ({"x-api-key": "not-a-key"}, "toy"),
    ]:
        span = tracer.start_span("request")
        with contextlib.suppress(Forbidden, Unauthenticated):
            table.admit(headers, model, span)
        span.end()
    attributes = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
    # the decision is the request span's outcome (gateway.outcome), set by the edge
    assert attributes == [
        {"gateway.auth.key_name": "checkout"},
        {"gateway.auth.key_name": "checkout"},
        {},
    ]
    text = generate_latest(built.registry).decode()
    assert 'gateway_auth_decisions_total{decision="allowed",key="checkout"} 1.0' in text
    for secret in (CHECKOUT_KEY, BATCH_KEY, sha(CHECKOUT_KEY), sha(BATCH_KEY), "not-a-key"):
        assert secret not in text
        assert all(secret not in str(a) for a in attributes)


def test_a_reload_keeps_the_buckets_of_unchanged_keys(built: Built) -> None:
    first = built.runtime(config_text(checkout_rate=0.25))
    assert first.auth is not None
    headers = {"x-api-key": CHECKOUT_KEY}
    first.auth.admit(headers, "toy", None)
    first.auth.admit(headers, "toy", None)
    # only the model list changed: same bucket, still empty
    second = built.runtime(config_text(checkout_rate=0.25, checkout_models="[toy, other]"), first)
    assert second.auth is not None
    with pytest.raises(RateLimited):
        second.auth.admit(headers, "other", None)
    # the rate changed: a new bucket, full
    third = built.runtime(config_text(checkout_rate=0.5), second)
    assert third.auth is not None
    assert third.auth.admit(headers, "toy", None) == "checkout"


def test_a_config_without_auth_builds_no_table(built: Built) -> None:
    text = config_text().split("auth:")[0]
    assert built.runtime(text).auth is None
