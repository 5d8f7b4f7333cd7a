"""A stalled Feast (SIGSTOP, as a GC pause or a stuck host would) opens the store's breaker;
once it answers again, its health check lets the next lookup through at once instead of
after the breaker's grown open interval."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from contract_samples import v1_entity_doc
from feast_support import Feast
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

STALL_SECONDS = 5.0  # long enough for failed trials to grow the open interval to 4 s


def gateway_config(folder: Path, store: str, upstream: str, probe: str) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(f"""
feature_store:
  url: "{store}"
  breaker: {{probe_interval_ms: {probe}}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 2000}}
""")
    return path


def source(client: httpx.Client, gateway: GatewayThread) -> str:
    response = client.post(f"{gateway.url}/v1/models/fraud:predict", json=v1_entity_doc(["c-0042"]))
    assert response.status_code == 200, response.text
    return response.headers["x-gateway-feature-source"]


def seconds_to_live_after_a_stall(gateway: GatewayThread, feast: Feast) -> float:
    """Stall Feast under steady requests (every 20 ms); seconds from SIGCONT to live."""
    with httpx.Client(timeout=10) as client:
        assert source(client, gateway) == "live"
        os.killpg(feast.pid, signal.SIGSTOP)
        try:
            until = time.monotonic() + STALL_SECONDS
            while time.monotonic() < until:
                assert source(client, gateway) == "cache"
                time.sleep(0.02)
        finally:
            os.killpg(feast.pid, signal.SIGCONT)
        healed = time.monotonic()
        while source(client, gateway) != "live":
            assert time.monotonic() - healed < 15, "live features never came back"
            time.sleep(0.02)
        return time.monotonic() - healed


def metric(gateway: GatewayThread, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_live_features_return_within_a_second_of_a_stalled_store_answering(
    feast: Feast, model_server: ModelServer, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path, feast.url, model_server.url, "250")
    with GatewayThread(load_config(config), InMemorySpanExporter()) as gateway:
        took = seconds_to_live_after_a_stall(gateway, feast)
        healthy = metric(gateway, 'gateway_feature_store_probes_total{result="healthy"}')
        unhealthy = metric(gateway, 'gateway_feature_store_probes_total{result="unhealthy"}')
    print(f"live again {took:.2f} s after the stall ended ({unhealthy:g} unhealthy checks)")
    assert took < 1.0, took  # without the probe: the rest of a 4 s open interval
    assert healthy >= 1 and unhealthy >= 1
