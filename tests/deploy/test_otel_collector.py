"""deploy/otel/collector.yaml: a coherent collector config that receives what the gateway sends.

No collector binary runs here, so the file is checked as data: every pipeline names only
components defined above it, memory_limiter comes first and batch after it, and the OTLP
receiver listens on the port the gateway's exporter sends to, by default and in the
production overlay.
"""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_support import PRODUCTION, ROOT, env_value, gateway_container, render
from opentelemetry.exporter.otlp.proto.http.trace_exporter import DEFAULT_ENDPOINT

from gateway.settings.schema import Exporter

COLLECTOR = ROOT / "deploy" / "otel" / "collector.yaml"
SECTIONS = ("receivers", "processors", "exporters")


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COLLECTOR.read_text(encoding="utf-8"))
    return config


def _port(endpoint: str) -> int:
    port = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").port
    assert port is not None, f"no port in {endpoint!r}"
    return port


def _http_receiver_port(collector: dict[str, Any]) -> int:
    return _port(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"])


def test_pipelines_name_only_defined_components(collector: dict[str, Any]) -> None:
    service = collector["service"]
    assert set(service["pipelines"]) == {"traces"}, "the gateway exports traces only"
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in service["pipelines"].items():
        for section in SECTIONS:
            assert pipeline.get(section) or section == "processors", f"{name} has no {section}"
            for component in pipeline.get(section, []):
                assert component in (collector.get(section) or {}), (
                    f"pipeline {name} names {section[:-1]} {component!r}, which is not defined"
                )
                used[section].add(component)
    for section in SECTIONS:
        unused = set(collector.get(section) or {}) - used[section]
        assert not unused, f"{section} defined but in no pipeline: {sorted(unused)}"
    for extension in service.get("extensions", []):
        assert extension in collector["extensions"], f"extension {extension!r} is not defined"


def test_memory_limiter_comes_first_and_batch_follows(collector: dict[str, Any]) -> None:
    for name, pipeline in collector["service"]["pipelines"].items():
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter", f"{name}: memory_limiter must be first"
        assert "batch" in processors[1:], f"{name}: batch after memory_limiter"
    limiter = collector["processors"]["memory_limiter"]
    assert limiter["check_interval"]
    assert ("limit_percentage" in limiter) or ("limit_mib" in limiter)


def test_the_otlp_receiver_speaks_grpc_and_http_on_the_standard_ports(
    collector: dict[str, Any],
) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    for protocol in protocols.values():
        # The collector's default binds localhost only, which no pod could reach.
        assert urlsplit(f"//{protocol['endpoint']}").hostname == "0.0.0.0"


def test_the_gateways_default_endpoint_reaches_the_receiver(collector: dict[str, Any]) -> None:
    # gateway.telemetry.tracing builds OTLPSpanExporter() (http/protobuf) with no endpoint of
    # its own, so the SDK's default, or OTEL_EXPORTER_OTLP_ENDPOINT, applies.
    assert _port(DEFAULT_ENDPOINT) == _http_receiver_port(collector)


def test_the_production_overlay_sends_traces_to_the_receiver(collector: dict[str, Any]) -> None:
    container = gateway_container(render(PRODUCTION))
    exporter = env_value(container, "OTEL_TRACES_EXPORTER")
    assert exporter == "otlp" and exporter in get_args(Exporter)
    endpoint = env_value(container, "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert endpoint is not None
    assert urlsplit(endpoint).scheme == "http"
    assert _port(endpoint) == _http_receiver_port(collector)


def test_the_exporters_send_somewhere(collector: dict[str, Any]) -> None:
    exporters = collector["exporters"]
    backends = [name for name in exporters if name.split("/")[0] in ("otlp", "otlphttp")]
    assert backends, "no exporter sends the traces to a backend"
    for name in backends:
        assert exporters[name]["endpoint"]
