"""A model server answering 200 with garbage: the gateway refuses to serve it (502).

Real ``gateway model-server`` processes in each output-corrupting fault mode, one started
with ``--fault-mode`` and one switched through ``POST /_debug/fault``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from contract_samples import V1, V2, v1, v2_doc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import (
    GatewayThread,
    ModelServer,
    model_server_running,
    write_config,
)

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

# fault mode -> (rule, text naming the output)
FAULTS = {
    "nan": ("nan", "output 'probabilities'[0]: NaN (null) in the answer (rule: nan)"),
    "out-of-range": ("probability", "output 'probabilities'[0]: 1.7 is outside [0, 1] (rule: probability)"),
    "wrong-shape": ("output_shape", "output 'probabilities': shape [2, 1] does not fit the card's [-1, 2] (rule: output_shape)"),
    "wrong-batch": ("output_batch", "output 'label': batch dimension 1, the request has 2 rows (rule: output_batch)"),
}  # fmt: skip


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[ModelServer]:
    with model_server_running("--fault-mode", "nan") as server:
        yield server


@pytest.fixture(scope="module")
def gateway_to_faulty(
    faulty_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    folder: Path = tmp_path_factory.mktemp("outputs")
    # A breaker that never opens here, so every answer reaches the output check.
    extra = "    breaker: {consecutive_failures: 100000}\n"
    config = load_config(write_config(folder, faulty_server.url, extra))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread


def set_fault(server: ModelServer, mode: str) -> None:
    response = httpx.post(f"{server.url}/_debug/fault", json={"mode": mode})
    assert response.status_code == 200, response.text


def test_a_server_started_in_nan_mode_is_refused(gateway_to_faulty: GatewayThread) -> None:
    response = httpx.post(gateway_to_faulty.url + V2, content=orjson.dumps(v2_doc()))
    assert response.status_code == 502
    assert response.json()["error"].startswith(
        "upstream 'fraud-v1': answer breaks the output contract: "
    )
    assert FAULTS["nan"][1] in response.json()["error"]


@pytest.mark.parametrize("mode", sorted(FAULTS))
@pytest.mark.parametrize("path", [V2, V1])
def test_each_corrupting_fault_is_a_502_naming_the_rule(
    gateway_to_faulty: GatewayThread, faulty_server: ModelServer, mode: str, path: str
) -> None:
    set_fault(faulty_server, mode)
    body = orjson.dumps(v2_doc()) if path == V2 else v1()
    response = httpx.post(gateway_to_faulty.url + path, content=body)
    rule, text = FAULTS[mode]
    assert response.status_code == 502, response.text
    assert text in response.json()["error"]
    metrics = httpx.get(f"{gateway_to_faulty.url}/metrics").text
    assert (
        f'gateway_output_violations_total{{model="fraud",rule="{rule}",upstream="fraud-v1"}}'
        in metrics
    )
    assert 'outcome="upstream_bad_response",upstream="fraud-v1"' in metrics


def test_the_client_span_names_the_output_rule(
    gateway_to_faulty: GatewayThread, faulty_server: ModelServer
) -> None:
    set_fault(faulty_server, "out-of-range")
    gateway_to_faulty.exporter.clear()
    httpx.post(gateway_to_faulty.url + V2, content=orjson.dumps(v2_doc()))
    client = next(
        s for s in gateway_to_faulty.exporter.get_finished_spans() if s.name == "infer fraud-v1"
    )
    assert client.attributes is not None
    assert tuple(client.attributes["gateway.output_rules"]) == ("probability",)  # type: ignore[arg-type]


def test_a_healthy_answer_passes_again(
    gateway_to_faulty: GatewayThread, faulty_server: ModelServer
) -> None:
    set_fault(faulty_server, "normal")
    response = httpx.post(gateway_to_faulty.url + V2, content=orjson.dumps(v2_doc()))
    assert response.status_code == 200, response.text
    requested = v2_doc() | {"outputs": [{"name": "probabilities"}]}
    only = httpx.post(gateway_to_faulty.url + V2, content=orjson.dumps(requested))
    assert only.status_code == 200, only.text
    assert [o["name"] for o in only.json()["outputs"]] == ["probabilities"]


def test_output_violations_feed_the_breaker(faulty_server: ModelServer, tmp_path: Path) -> None:
    set_fault(faulty_server, "wrong-batch")
    extra = "    breaker: {consecutive_failures: 2, reset_timeout_seconds: 60}\n"
    config = load_config(write_config(tmp_path, faulty_server.url, extra))
    with GatewayThread(config, InMemorySpanExporter()) as gateway:
        body = orjson.dumps(v2_doc())
        statuses = [httpx.post(gateway.url + V2, content=body).status_code for _ in range(3)]
        last = httpx.post(gateway.url + V2, content=body)
    set_fault(faulty_server, "normal")
    assert statuses[:2] == [502, 502]
    assert last.status_code == 503
    assert "circuit 'fraud/fraud-v1' is open" in last.json()["error"]
