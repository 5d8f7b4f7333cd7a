"""The Prometheus alert rules in deploy/prometheus: valid, unit-tested, and about real metrics.

promtool (Debian's ``prometheus`` package, installed by ``make tools``) checks the rule file
and runs its unit tests (alerts.test.yaml); then every ``gateway_*`` name the rules query is
checked against the families a running gateway really registers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from ladder_support import FALLBACK_SHA256
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.metrics_core import Metric
from support import MODELS, ROOT, GatewayThread, free_port

from gateway.settings import load_config

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"

# The series names each family type exposes (prometheus_client: counters get `_total`).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
# Target labels Prometheus adds at scrape time: never set by the gateway.
TARGET_LABELS = {"job", "instance"}
INSTANCE = {"customer_id": "c-1", "amount": 120.5, "merchant_category": "grocery", "hour": 14,
            "is_foreign": False}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"\bgateway_[a-z0-9_]+\b")
_SELECTOR = re.compile(r"\b(gateway_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in the repository's root; fail (never skip) when it is not installed."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not on PATH: `make tools` installs it (Debian's prometheus package)",
            pytrace=False,
        )
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(result.args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rule_file() -> None:
    assert_ok(promtool("check", "rules", str(RULES.relative_to(ROOT))))


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert_ok(promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT))))


def test_every_alert_has_a_warning_and_a_critical_tier() -> None:
    tiers: dict[str, list[str]] = {}
    for rule in rules():
        name = rule["alert"]
        tiers.setdefault(name, []).append(rule["labels"]["severity"])
        assert {"summary", "description"} <= rule["annotations"].keys(), name
        assert "for" in rule, f"{name}: alerts on a single evaluation are noise"
    assert tiers, "no alerts in the rule file"
    for name, severities in tiers.items():
        assert sorted(severities) == ["critical", "warning"], name


def exposed_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in SUFFIXES[family.type]}


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Metric]]:
    """The families of a running gateway with every optional part configured: a feature
    store, fallback model, default answer, canary and shadow (none of them listening)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    path = tmp_path_factory.mktemp("alerts") / "gateway.yaml"
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 0.0}}
feature_store: {{url: "{nowhere}", timeout_ms: 200}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{nowhere}", timeout_ms: 1000}}
    features: {{on_missing: defaults}}
    fallback: {{card: {MODELS / "fraud-fallback"}, sha256: {FALLBACK_SHA256}}}
    default_response: {{score: 0.05}}
    canary: {{name: fraud-v2, url: "{nowhere}", weight: 10}}
    shadows: [{{name: fraud-v3, url: "{nowhere}", sample_percent: 100}}]
"""
    )
    with GatewayThread(load_config(path), InMemorySpanExporter()) as gateway:
        # One request, so the families labelled on first use have children: the store call
        # fails, features are defaults, the upstreams refuse, the fallback model answers.
        response = httpx.post(
            f"{gateway.url}/v1/models/fraud:predict", json={"instances": [INSTANCE]}, timeout=10
        )
        assert response.status_code == 200, response.text
        # The registry as /metrics serves it, the collectors registered at startup included.
        registry = gateway.app.state.gateway.metrics.registry
        yield {name: family for family in registry.collect() for name in exposed_names(family)}


def test_every_gateway_metric_the_rules_query_is_exported(families: dict[str, Metric]) -> None:
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in _NAME.findall(_STRING.sub('""', rule["expr"])):
            used.setdefault(name, set()).add(rule["alert"])
    assert len(used) >= 10, f"too few gateway metrics found in the rules: {sorted(used)}"
    missing = {name: sorted(alerts) for name, alerts in used.items() if name not in families}
    assert not missing, (
        f"the rules query series the gateway does not export: {missing}; "
        f"gateway series: {sorted(n for n in families if n.startswith('gateway_'))}"
    )


def test_label_matchers_in_the_rules_name_real_labels(families: dict[str, Metric]) -> None:
    """Where a family has samples (after one request), its matchers' labels are its labels."""
    checked = 0
    for rule in rules():
        for name, matchers in _SELECTOR.findall(rule["expr"]):
            family = families.get(name)
            if family is None or not family.samples:
                continue  # reported by the test above, or no child yet to read labels from
            labels = {label for sample in family.samples for label in sample.labels}
            unknown = set(_MATCHER.findall(matchers)) - labels - TARGET_LABELS
            assert not unknown, f"{rule['alert']}: {name} has no label {sorted(unknown)}"
            checked += 1
    assert checked, "no label matcher could be checked"
