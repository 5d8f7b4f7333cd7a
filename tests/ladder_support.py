"""Helpers for the degradation ladder's tests: configs with a fallback, metrics, /admin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from support import MODELS, write_config

FALLBACK_SHA256 = json.loads((MODELS / "fraud-fallback" / "model-card.json").read_text())[
    "artifact"
]["sha256"]
TOKEN = "test-admin-token"


def ladder_config(folder: Path, upstream_url: str, model_extra: str) -> Path:
    """``write_config`` with extra keys under ``models.fraud`` (indented four spaces)."""
    return write_config(folder, upstream_url, model_extra)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def admin_status(url: str, model: str = "fraud") -> dict[str, Any]:
    response = httpx.get(
        f"{url}/admin/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["models"][model]
    return status
