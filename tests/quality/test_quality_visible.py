"""The monitors where operators look: ``/admin/status`` and ``/metrics``, refreshed on the
gateway's own timer (real uvicorn; the fallback model serves, nothing listens upstream)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from support import MODELS, GatewayThread, free_port

from gateway.settings import load_config

INSTANCE = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
            "account_age_days": 900, "amount": 50_000.0, "merchant_category": "grocery",
            "hour": 14, "is_foreign": False}  # fmt: skip
EXTRA = f"""    fallback: {{card: {MODELS / "fraud-fallback"}, sha256: {FALLBACK_SHA256}}}
    breaker: {{consecutive_failures: 1, reset_timeout_seconds: 60}}
    data_quality: {{window: 50, min_count: 20, refresh_seconds: 0.05}}
"""


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_status_and_metrics_show_an_unusual_input_without_a_manual_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    config = load_config(ladder_config(tmp_path, f"http://127.0.0.1:{free_port()}", EXTRA))
    with GatewayThread(config, InMemorySpanExporter()) as gateway:
        for _ in range(3):
            response = httpx.post(
                f"{gateway.url}/v1/models/fraud:predict",
                json={"instances": [INSTANCE] * 10},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-gateway-input-warnings"] == "amount"
        deadline = time.monotonic() + 5
        while admin_status(gateway.url)["data_quality"]["inputs"]["amount"]["window_count"] < 30:
            assert time.monotonic() < deadline, "the refresh timer never ran"
            time.sleep(0.05)
        quality = admin_status(gateway.url)["data_quality"]
        amount = quality["inputs"]["amount"]
        assert amount["status"] == "critical" and amount["out_of_range_share"] == 1.0
        assert amount["psi"] > 0.25 and amount["out_of_distribution_total"] == 30
        assert quality["inputs"]["hour"]["status"] == "critical"  # one hour only: drifted
        assert quality["score"]["by_variant"]["fallback"]["window_count"] == 30
        assert quality["mitigation"] == {"active": False, "reason": None}  # on_critical: flag

        metrics = samples(gateway.url)
        amount_labels = (("input", "amount"), ("model", "fraud"))
        assert metrics[("gateway_input_status", amount_labels)] == 2
        assert metrics[("gateway_input_psi", amount_labels)] == pytest.approx(
            amount["psi"], rel=1e-3
        )
        assert metrics[("gateway_input_out_of_distribution_total", amount_labels)] == 30
        fallback = (("model", "fraud"), ("variant", "fallback"))
        assert ("gateway_score_psi", fallback) in metrics
