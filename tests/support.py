"""Helpers shared by the tests: model cards on disk, free ports, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from gateway.app import Seams, create_app
from gateway.server import uvicorn_options
from gateway.service.runtime import Runtime, build_runtime
from gateway.settings import LoadedConfig
from gateway.telemetry.ladder_metrics import LadderMetrics

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def card_doc(**overrides: Any) -> dict[str, Any]:
    """A small valid model card: two features, two request fields, scores in column 1."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "name": "toy",
        "version": "1",
        "role": "primary",
        "platform": "onnx_onnxv1",
        "artifact": {"path": "model.onnx", "sha256": "0" * 64},
        "entity_key": "customer_id",
        "inputs": [
            {"name": "avg_amount_30d", "datatype": "FP32", "shape": [-1, 1], "kind": "float",
             "source": "feature", "feature_ref": "customer_stats:avg_amount_30d"},
            {"name": "txn_count_7d", "datatype": "FP32", "shape": [-1, 1], "kind": "int",
             "source": "feature", "feature_ref": "customer_stats:txn_count_7d"},
            {"name": "merchant_category", "datatype": "BYTES", "shape": [-1, 1],
             "kind": "category", "source": "request", "categories": ["grocery", "travel"]},
            {"name": "is_foreign", "datatype": "FP32", "shape": [-1, 1], "kind": "bool",
             "source": "request"},
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "score": {"output": "probabilities", "index": 1, "threshold": 0.5,
                  "labels": {"0": "legit", "1": "fraud"}},
    }  # fmt: skip
    doc.update(overrides)
    return doc


def runtime_of(
    config: LoadedConfig, previous: Runtime | None = None, clock: Any = time.monotonic
) -> Runtime:
    """The runtime ``config`` gives, its breaker metrics on a registry of its own."""
    return build_runtime(config, clock, LadderMetrics(CollectorRegistry()), previous)


def write_card(model_dir: Path, **overrides: Any) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model-card.json").write_text(json.dumps(card_doc(**overrides)))
    return model_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http_ok(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


@contextlib.contextmanager
def running(
    command: list[str],
    health_url: str,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; yields once ``health_url`` answers 200."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    try:
        try:
            wait_http_ok(health_url, timeout, process)
        except (RuntimeError, TimeoutError) as exc:
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"{exc}\n{err.decode(errors='replace')[-2000:]}") from exc
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stderr:
            process.stderr.close()


def model_server_command(model_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gateway",
        "model-server",
        str(model_dir),
        "--port",
        str(port),
        *extra,
    ]


@dataclass
class ModelServer:
    url: str
    port: int


@contextlib.contextmanager
def model_server_running(
    *extra: str, model_dir: Path = MODELS / "fraud-v1"
) -> Iterator[ModelServer]:
    """A real ``gateway model-server`` (with ``extra`` options) on a free port, for the block."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(model_server_command(model_dir, port, *extra), f"{url}/v2/health/ready"):
        yield ModelServer(url, port)


def write_config(folder: Path, upstream_url: str, extra: str = "") -> Path:
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 1.0}}
server: {{max_body_bytes: 65536}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream_url}", timeout_ms: 2000}}
{extra}"""
    )
    return path


class GatewayThread:
    """A real uvicorn server running the gateway app in a background thread."""

    def __init__(
        self, config: LoadedConfig, exporter: InMemorySpanExporter, seams: Seams | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.exporter = exporter
        seams = replace(seams or Seams(), span_exporter=exporter)
        self.app = app = create_app(config, seams)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                lifespan="on",
                **{**uvicorn_options(config), "log_level": "warning"},
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
