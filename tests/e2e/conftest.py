"""Fixtures for end-to-end tests: a real model-server process and the gateway on uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import (
    MODELS,
    GatewayThread,
    ModelServer,
    free_port,
    model_server_command,
    running,
    write_config,
)

from gateway.settings import load_config


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(model_server_command(MODELS / "fraud-v1", port), f"{url}/v2/health/ready"):
        yield ModelServer(url, port)


@pytest.fixture(scope="module")
def gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    config = load_config(write_config(tmp_path_factory.mktemp("gw"), model_server.url))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread
