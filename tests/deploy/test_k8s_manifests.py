"""deploy/k8s: valid Kubernetes objects that agree with the gateway and with its image.

``kubectl kustomize`` renders the base and the production overlay; every object is
validated against the Kubernetes OpenAPI schemas (PyPI's kubernetes-validate, strict: an
unknown field is an error). The one custom resource, the Prometheus Operator's
ServiceMonitor, lives in an optional component and is checked here field by field. Then
probes, port, command, config mount, shutdown timing, security and scaling are compared
with the gateway's own defaults, and the ConfigMap's routing file is loaded with the
gateway's loader in the image's layout.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    BASE,
    LIVE_PATH,
    METRICS_PATH,
    PRODUCTION,
    READY_PATH,
    build_image_tree,
    dockerfile_stages,
    env_value,
    gateway_container,
    one,
    render,
)

from gateway.api.admin import TOKEN_VARIABLE
from gateway.cli import build_parser
from gateway.settings.loader import load_config
from gateway.settings.schema import ServerSettings

# The oldest Kubernetes the manifests promise to fit, and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources allowed, and only in an overlay (the base must apply to any cluster).
KNOWN_CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
BUILDS = {"base": BASE, "production": PRODUCTION}
DEFAULTS = ServerSettings()


@pytest.fixture(params=sorted(BUILDS))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(BUILDS[request.param])


def _pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def _serve_args(container: dict[str, Any]) -> Any:
    command = [*container["command"], *container.get("args", [])]
    assert command[0] == "gateway", command
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve", command
    return args


def _port(container: dict[str, Any], name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    result: int = port
    return result


def _quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (cpu "500m", "2"; memory "512Mi", "1G") as a plain number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    number, unit = match.groups()
    return float(number) * units.get(unit, 1.0) if unit else float(number)


def _config_map_file(objects: list[dict[str, Any]], container: dict[str, Any]) -> tuple[str, str]:
    """(the --config path, the routing YAML the pod finds there)."""
    config_path = Path(_serve_args(container).config)
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    assert len(mounts) == 1, (
        f"--config {config_path} must lie directly in a mounted ConfigMap folder; "
        "a subPath mount would never see ConfigMap updates"
    )
    assert "subPath" not in mounts[0]
    (volume,) = [v for v in _pod_spec(objects)["volumes"] if v["name"] == mounts[0]["name"]]
    name = volume["configMap"]["name"]
    (config_map,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name
    ]
    assert config_path.name in config_map["data"], f"ConfigMap {name} has no {config_path.name}"
    return str(config_path), config_map["data"][config_path.name]


def test_every_object_is_valid_for_kubernetes(objects: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
            "PodDisruptionBudget"} <= kinds  # fmt: skip
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in KNOWN_CUSTOM_RESOURCES:
            continue  # checked field by field in test_service_monitor_scrapes_the_service
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except jsonschema.ValidationError as exc:  # kubernetes-validate raises either
                where = ".".join(str(p) for p in exc.path)
                problems.append(f"{name} at {where} (Kubernetes {version}): {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{exc.message}: a custom resource not in KNOWN_CUSTOM_RESOURCES?")
    assert not problems, "\n".join(problems)


def test_the_base_holds_no_custom_resource() -> None:
    custom = [(o["apiVersion"], o["kind"]) for o in render(BASE) if "." in o["apiVersion"]
              and not o["apiVersion"].split("/")[0].endswith(".k8s.io")]  # fmt: skip
    assert custom == [], "the base must apply to a cluster without extra CRDs"


def test_service_monitor_scrapes_the_service() -> None:
    objects = render(PRODUCTION)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"], "a ServiceMonitor without endpoints scrapes nothing"
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") == METRICS_PATH


def test_probes_use_the_gateways_health_routes(objects: list[dict[str, Any]]) -> None:
    container = gateway_container(objects)
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == LIVE_PATH
    assert container["startupProbe"]["httpGet"]["path"] == LIVE_PATH
    port = _serve_args(container).port
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        target = container[probe]["httpGet"]["port"]
        assert (_port(container, target) if isinstance(target, str) else target) == port


def test_the_container_runs_gateway_serve_on_its_port(objects: list[dict[str, Any]]) -> None:
    container = gateway_container(objects)
    args = _serve_args(container)
    assert args.host == "0.0.0.0", "on loopback the Service could not reach the gateway"
    assert args.port == _port(container, "http") == DEFAULTS.port
    assert args.workers >= 1
    # The fleet's supervisor creates this folder; a lone process would write into nothing.
    if env_value(container, "PROMETHEUS_MULTIPROC_DIR") is not None:
        assert args.workers > 1, "PROMETHEUS_MULTIPROC_DIR needs --workers > 1"
    # One worker per CPU of the limit at most: more only contend for it.
    assert args.workers <= math.ceil(_quantity(container["resources"]["limits"]["cpu"]))
    service = one(objects, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {"http", args.port}
    assert service["spec"]["selector"].items() <= (
        one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_grace_period_covers_pre_stop_and_graceful_shutdown(
    objects: list[dict[str, Any]],
) -> None:
    container = gateway_container(objects)
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        delay = float(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", f"preStop should only wait: {command}"
        delay = float(command[1])
    assert delay > 0, "without a delay new requests still arrive after SIGTERM"
    _, text = _config_map_file(objects, container)
    configured = yaml.safe_load(text).get("server", {}).get("graceful_shutdown_seconds")
    graceful = max(DEFAULTS.graceful_shutdown_seconds, configured or 0)
    grace = _pod_spec(objects)["terminationGracePeriodSeconds"]
    assert grace > delay + graceful, (
        f"terminationGracePeriodSeconds {grace} must exceed the preStop delay {delay:g} s "
        f"plus graceful_shutdown_seconds {graceful:g} s, or in-flight requests are killed"
    )


def test_the_pod_runs_non_root_on_a_read_only_root(objects: list[dict[str, Any]]) -> None:
    pod = _pod_spec(objects)
    container = gateway_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # Every folder the gateway writes to is an emptyDir.
    scratch = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in scratch]
    env = {e["name"]: e.get("value") for e in container["env"]}
    for variable in ("PROMETHEUS_MULTIPROC_DIR", "XDG_CACHE_HOME"):
        path = Path(env[variable])
        assert any(path.is_relative_to(m) for m in writable), f"{variable}={path} is read-only"
    assert "/tmp" in writable


def test_requests_and_limits_are_set(objects: list[dict[str, Any]]) -> None:
    resources = gateway_container(objects)["resources"]
    for name in ("cpu", "memory"):
        request = _quantity(resources["requests"][name])
        limit = _quantity(resources["limits"][name])
        assert 0 < request <= limit, f"{name}: request {request} limit {limit}"


def test_autoscaler_and_disruption_budget_keep_pods_serving(
    objects: list[dict[str, Any]],
) -> None:
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]
    }  # fmt: skip
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # A budget that allows no eviction at all blocks node drains.
    if "maxUnavailable" in pdb["spec"]:
        assert pdb["spec"]["maxUnavailable"] >= 1
    else:
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_secrets_reach_the_gateway(objects: list[dict[str, Any]]) -> None:
    container = gateway_container(objects)
    (token,) = [e for e in container["env"] if e["name"] == TOKEN_VARIABLE]
    assert token["valueFrom"]["secretKeyRef"]["name"]
    pod = _pod_spec(objects)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/gateway/secrets"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["optional"] is True, "the API keys' Secret is optional"
    assert mount["readOnly"] is True


def test_the_routing_config_loads_in_the_image(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The ConfigMap's file, laid out as the kubelet mounts it (``..data`` symlinks) over the
    image's files (from the Dockerfile's COPYs), loads whole with the gateway's loader."""
    container = gateway_container(objects)
    config_path, text = _config_map_file(objects, container)
    root = build_image_tree(dockerfile_stages()[-1], tmp_path / "image")
    mount = root / Path(config_path).parent.relative_to("/")
    if mount.is_symlink():  # the ConfigMap hides what the image has in that folder
        mount.unlink()
    elif mount.exists():
        shutil.rmtree(mount)  # removes the links, not what they point at
    version = mount / "..2025_01_01_00_00_00.000000001"
    version.mkdir(parents=True)
    (version / Path(config_path).name).write_text(text, encoding="utf-8")
    (mount / "..data").symlink_to(version.name)
    (mount / Path(config_path).name).symlink_to(f"..data/{Path(config_path).name}")

    loaded = load_config(mount / Path(config_path).name)

    assert loaded.settings.models
    for name, model_dir in loaded.model_dirs.items():
        assert (model_dir / "model-card.json").is_file(), name


def test_the_repository_copy_checks_where_it_lies() -> None:
    """``gateway check-config deploy/k8s/base/gateway.yaml`` and ``gateway rollout --config``
    work from a checkout: deploy/k8s/models links to models/ as /app/models is in the pod."""
    loaded = load_config(BASE / "gateway.yaml")
    assert (BASE / "gateway.yaml").read_text(encoding="utf-8") in {
        data for obj in render(BASE) if obj["kind"] == "ConfigMap" for data in obj["data"].values()
    }
    assert set(loaded.model_dirs.values()) <= {
        p.resolve() for p in (BASE.parent / "models").iterdir()
    }
