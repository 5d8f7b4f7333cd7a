"""deploy/prometheus/scrape.yaml: a valid Prometheus config that finds the gateway's pods.

``promtool check config`` checks it (and the alert rules it loads). Debian's promtool, the
one ``make tools`` installs, is built without Kubernetes service discovery and refuses the
``kubernetes_sd_configs`` key; then the file is checked once more with each such block
replaced by a static target (the relabelling rules, the rest of the job and the rule files
are still promtool's to judge) and the discovery blocks are checked here against the
manifests.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    BASE,
    METRICS_PATH,
    PRODUCTION,
    ROOT,
    gateway_container,
    one,
    render,
)

from gateway.settings.schema import ServerSettings

SCRAPE = ROOT / "deploy" / "prometheus" / "scrape.yaml"
NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"
POD_ROLE_LABELS = {"__meta_kubernetes_namespace", "__meta_kubernetes_pod_name",
                   "__meta_kubernetes_pod_phase", "__meta_kubernetes_pod_container_port_name",
                   "__meta_kubernetes_pod_container_port_number"}  # fmt: skip


@pytest.fixture(scope="module")
def scrape() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    return config


def _promtool(config: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not on PATH: `make tools` installs it (Debian's prometheus package)",
            pytrace=False,
        )
    return subprocess.run(
        [exe, "check", "config", config.name],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _kubernetes_job(scrape: dict[str, Any]) -> dict[str, Any]:
    (job,) = [j for j in scrape["scrape_configs"] if "kubernetes_sd_configs" in j]
    return job


def _label_name(label: str) -> str:
    """A Kubernetes label key as Prometheus's pod discovery names it."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def test_promtool_accepts_the_config(scrape: dict[str, Any], tmp_path: Path) -> None:
    done = _promtool(SCRAPE)
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    assert NO_KUBERNETES_SD in output, output
    # This promtool has no Kubernetes discovery: check everything else it can.
    scrape = copy.deepcopy(scrape)
    for job in scrape["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["10.0.0.1:8080"]}]
    for rule_file in scrape.get("rule_files", []):
        shutil.copy(SCRAPE.parent / rule_file, tmp_path / rule_file)
    stand_in = tmp_path / SCRAPE.name
    stand_in.write_text(yaml.safe_dump(scrape), encoding="utf-8")
    done = _promtool(stand_in)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pod_discovery_keeps_the_gateways_http_port(scrape: dict[str, Any]) -> None:
    job = _kubernetes_job(scrape)
    objects = render(PRODUCTION)
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = gateway_container(objects)
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    assert set(discovery) <= {"role", "namespaces", "selectors"}
    assert deployment["metadata"]["namespace"] in discovery["namespaces"]["names"]
    for selector in discovery.get("selectors", []):
        assert selector["role"] == discovery["role"]
        key, _, value = selector["label"].partition("=")
        assert pod_labels.get(key) == value, f"selector {selector['label']} misses the pods"
    keeps = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    port_names = {p["name"] for p in container["ports"]}
    assert ("__meta_kubernetes_pod_container_port_name",) in keeps, "no keep rule for the port"
    assert any(s.startswith("__meta_kubernetes_pod_label_") for (s,) in keeps), "no label keep"
    for (source,), regex in keeps.items():
        assert source in POD_ROLE_LABELS or source.startswith("__meta_kubernetes_pod_label_")
        if source == "__meta_kubernetes_pod_container_port_name":
            assert any(re.fullmatch(regex, name) for name in port_names)
        elif source.startswith("__meta_kubernetes_pod_label_"):
            (label,) = [k for k in pod_labels if _label_name(k) == source]
            assert re.fullmatch(regex, pod_labels[label])
    assert job.get("metrics_path", "/metrics") == METRICS_PATH


def test_the_static_job_scrapes_the_default_port(scrape: dict[str, Any]) -> None:
    static = [j for j in scrape["scrape_configs"] if "static_configs" in j]
    assert static
    port = ServerSettings().port
    for job in static:
        assert job.get("metrics_path", "/metrics") == METRICS_PATH
        for group in job["static_configs"]:
            assert all(t.endswith(f":{port}") for t in group["targets"])


def test_the_base_and_overlay_name_the_same_port() -> None:
    assert {p["name"] for p in gateway_container(render(BASE))["ports"]} == {
        p["name"] for p in gateway_container(render(PRODUCTION))["ports"]
    }
