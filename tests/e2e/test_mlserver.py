"""MLServer as the primary: the demo model served by a real MLServer behind the gateway.

MLServer lives in a virtualenv of its own (``make .venv-mlserver/.installed``, which
``make test`` and ``make e2e`` run first); its runtime for ONNX is
``deploy/mlserver/onnx_runtime.py``. It answers the 1-D ``label`` as ``[N, 1]`` and every
output whatever the request names: both must pass the gateway's output contract, so the
answers are served by MLServer, never by the fallback configured beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ladder_support import FALLBACK_SHA256
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port, wait_http_ok, write_config

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = Path(os.environ.get("MLSERVER_VENV", ROOT / ".venv-mlserver")) / "bin" / "mlserver"
CARD = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
ROWS = [
    {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
     "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
     "hour": 14, "is_foreign": False},
    {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.2,
     "account_age_days": 900, "amount": 2400.0, "merchant_category": "electronics",
     "hour": 3, "is_foreign": True},
]  # fmt: skip


def v2_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": spec["name"], "datatype": spec["datatype"], "shape": [len(rows), 1],
         "data": [float(r[spec["name"]]) if spec["datatype"].startswith("FP")
                  else r[spec["name"]] for r in rows]}
        for spec in CARD["inputs"]
    ]  # fmt: skip
    return {"inputs": inputs, **extra}


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlserver start`` over a folder holding fraud-v1 and the ONNX runtime; its URL."""
    if not MLSERVER.exists():
        pytest.fail(
            f"MLServer's virtualenv is missing ({MLSERVER} not found): run "
            "`make .venv-mlserver/.installed` (make test and make e2e do) or point "
            "MLSERVER_VENV at one with deploy/mlserver/requirements.txt installed"
        )
    folder = tmp_path_factory.mktemp("mlserver")
    model = folder / "fraud"
    model.mkdir()
    shutil.copy(MODELS / "fraud-v1" / "model.onnx", model / "model.onnx")
    shutil.copy(ROOT / "deploy" / "mlserver" / "onnx_runtime.py", model / "onnx_runtime.py")
    (model / "model-settings.json").write_text(json.dumps({
        "name": "fraud", "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": "./model.onnx", "version": CARD["version"]},
    }))  # fmt: skip
    port = free_port()
    # parallel_workers 0: inference in the server's process (no worker pool to start, and
    # MLServer 1.7's pool crashes with uvloop >= 0.22); no metrics server.
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "parallel_workers": 0, "metrics_endpoint": None,
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLSERVER_"))}
    env["XDG_CACHE_HOME"] = str(folder / "cache")
    url = f"http://127.0.0.1:{port}"
    with (folder / "mlserver.log").open("wb") as log:
        process = subprocess.Popen(
            [str(MLSERVER), "start", str(folder)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                wait_http_ok(f"{url}/v2/models/fraud/ready", 60, process)
            except (RuntimeError, TimeoutError) as exc:
                tail = (folder / "mlserver.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"MLServer did not start: {exc}\n{tail}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture(scope="module")
def gateway(mlserver: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    folder = tmp_path_factory.mktemp("gw")
    primary = f'    primary: {{name: fraud-v1, url: "{mlserver}", timeout_ms: 2000}}\n'
    mlserver_primary = (
        f'    primary: {{name: mlserver, url: "{mlserver}", timeout_ms: 2000, '
        f'model_name: fraud, model_version: "{CARD["version"]}"}}\n'
    )
    fallback = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
    path = write_config(folder, mlserver)
    path.write_text(path.read_text().replace(primary, mlserver_primary) + fallback)
    with GatewayThread(load_config(path), InMemorySpanExporter()) as thread:
        yield thread


def test_mlserver_answers_in_its_own_shapes(mlserver: str) -> None:
    # What the gateway has to accept: [N, 1] for the card's [-1], every output regardless.
    body = v2_body(ROWS, outputs=[{"name": "probabilities"}])
    answer = httpx.post(f"{mlserver}/v2/models/fraud/infer", json=body).json()
    shapes = {o["name"]: o["shape"] for o in answer["outputs"]}
    assert shapes == {"label": [2, 1], "probabilities": [2, 2]}


def test_v2_predictions_are_served_by_mlserver(gateway: GatewayThread, mlserver: str) -> None:
    direct = httpx.post(f"{mlserver}/v2/models/fraud/infer", json=v2_body(ROWS)).json()
    response = httpx.post(f"{gateway.url}/v2/models/fraud/infer", json=v2_body(ROWS, id="r-1"))
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-served-by"] == "mlserver"
    assert response.headers["x-gateway-variant"] == "primary"
    answer = response.json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["shape"] == [2]  # the card's shape (client_shape: card)
    assert outputs["label"]["data"] == [0, 1]
    expected = next(o for o in direct["outputs"] if o["name"] == "probabilities")
    assert outputs["probabilities"]["data"] == pytest.approx(expected["data"])
    assert answer["id"] == "r-1" and answer["parameters"]["gateway_served_by"] == "mlserver"


def test_only_the_requested_outputs_come_back(gateway: GatewayThread) -> None:
    body = v2_body(ROWS, outputs=[{"name": "probabilities"}])
    response = httpx.post(f"{gateway.url}/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-served-by"] == "mlserver"
    assert [o["name"] for o in response.json()["outputs"]] == ["probabilities"]


def test_v1_predictions_are_served_by_mlserver(gateway: GatewayThread, mlserver: str) -> None:
    direct = httpx.post(f"{mlserver}/v2/models/fraud/infer", json=v2_body(ROWS)).json()
    probabilities = next(o for o in direct["outputs"] if o["name"] == "probabilities")["data"]
    instances = [row | {"customer_id": f"c-000{i}"} for i, row in enumerate(ROWS)]
    response = httpx.post(f"{gateway.url}/v1/models/fraud:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provenance"]["served_by"] == "mlserver"
    assert body["provenance"]["degraded"] is False
    assert [p["score"] for p in body["predictions"]] == pytest.approx(probabilities[1::2])
    assert [p["label"] for p in body["predictions"]] == ["legit", "fraud"]


def test_binary_clients_are_served_by_mlserver(gateway: GatewayThread, mlserver: str) -> None:
    # tritonclient's default: binary inputs and outputs; the gateway speaks JSON to MLServer.
    direct = httpx.post(f"{mlserver}/v2/models/fraud/infer", json=v2_body(ROWS)).json()
    expected = next(o for o in direct["outputs"] if o["name"] == "probabilities")["data"]
    client = triton.InferenceServerClient(gateway.url.removeprefix("http://"))
    try:
        inputs = []
        for spec, tensor in zip(CARD["inputs"], v2_body(ROWS)["inputs"], strict=True):
            dtype = (
                object
                if spec["datatype"] == "BYTES"
                else triton.triton_to_np_dtype(spec["datatype"])
            )
            array = np.array(tensor["data"], dtype=dtype).reshape(len(ROWS), 1)
            typed = triton.InferInput(spec["name"], [len(ROWS), 1], spec["datatype"])
            typed.set_data_from_numpy(array, binary_data=True)
            inputs.append(typed)
        outputs = [triton.InferRequestedOutput(n, binary_data=True)
                   for n in ("label", "probabilities")]  # fmt: skip
        result = client.infer("fraud", inputs, outputs=outputs)
    finally:
        client.close()
    assert result.get_response()["parameters"]["gateway_served_by"] == "mlserver"
    assert result.as_numpy("label").tolist() == [0, 1]  # the card's [-1], not MLServer's [N, 1]
    np.testing.assert_allclose(result.as_numpy("probabilities").ravel(), expected, rtol=1e-6)


@pytest.mark.parametrize(("model_name", "status"), [("fraud", 200), ("frod", 503)])
def test_readiness_is_mlservers_for_the_configured_model(
    mlserver: str, tmp_path: Path, model_name: str, status: int
) -> None:
    # Without a fallback the upstream decides; MLServer is up either way, but does not
    # serve a model named "frod".
    path = write_config(tmp_path, mlserver)
    named = f'url: "{mlserver}", timeout_ms: 2000, model_name: {model_name}'
    path.write_text(path.read_text().replace(f'url: "{mlserver}", timeout_ms: 2000', named))
    with GatewayThread(load_config(path), InMemorySpanExporter()) as thread:
        assert httpx.get(f"{thread.url}/v2/models/fraud/ready").status_code == status
        assert httpx.get(f"{thread.url}/v2/health/ready").status_code == status
