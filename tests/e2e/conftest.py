"""Fixtures for end-to-end tests: a real model-server process and the gateway on uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import (
    GatewayThread,
    ModelServer,
    model_server_running,
    write_config,
)

from gateway.settings import load_config


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with model_server_running() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    config = load_config(write_config(tmp_path_factory.mktemp("gw"), model_server.url))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread
