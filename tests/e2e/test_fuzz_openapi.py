"""Fuzz the gateway's HTTP surface from its own ``/openapi.json`` with schemathesis.

A real uvicorn gateway in a thread in front of a real model-server process; every
operation of the document gets generated (valid and invalid) requests. No answer may be a
server error, and every error is the gateway's ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from schemathesis import GenerationMode
from support import GatewayThread, ModelServer, write_config

from gateway.settings import load_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def fuzzed_gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    config = load_config(write_config(folder, model_server.url, "    max_batch_size: 64\n"))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread


def test_the_document_describes_every_route(fuzzed_gateway: GatewayThread) -> None:
    document = httpx.get(f"{fuzzed_gateway.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v2/models/{model}/infer", "/v1/models/{model}:predict", "/metrics"} <= set(
        document["paths"]
    )
    instance = document["components"]["schemas"]["Instance"]
    # The bounds are each field's domain (400 outside), not what training saw: an amount
    # has no upper bound, a rate lies in [0, 1], a category the model never saw is valid.
    properties = instance["properties"]
    assert properties["hour"] == {"type": "integer", "minimum": 0, "maximum": 23}
    assert properties["amount"] == {"type": "number", "minimum": 0}
    assert properties["chargeback_rate_90d"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert properties["merchant_category"] == {"type": "string"}
    assert properties["txn_count_7d"]["minimum"] == 0


# Examples per operation and generation mode: 12 operations x 2 modes x this, bounded so the
# whole run stays around a minute on the 2-core machine.
EXAMPLES = 100


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_anywhere(fuzzed_gateway: GatewayThread, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12  # every route but /openapi.json itself
    seen: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzzed_gateway.url, timeout=10)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (
                case.method,
                case.path,
                case.path_parameters,
                repr(case.body)[:600],
                response.text[:300],
            )
            if response.status_code >= 400:
                assert isinstance(response.json().get("error"), str), response.text[:300]

        try:
            fuzz()
        except Unsatisfiable:
            # No invalid request exists for an operation without parameters or body.
            assert mode is GenerationMode.NEGATIVE
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in seen), seen
