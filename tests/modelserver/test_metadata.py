"""Server and model metadata, health and readiness."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.modelserver import ModelLoadError, create_app
from gateway.modelserver.card import ModelIdentity
from gateway.modelserver.model import InferenceSession

from .support import TestClient, scoring_request


def test_server_metadata_names_the_server_and_its_extensions(client: TestClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {
        "name": "gateway-model-server",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }


def test_model_metadata_comes_from_the_card_and_the_session(client: TestClient) -> None:
    response = client.get("/v2/models/fraud")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": "fraud",
        "versions": ["1"],
        "platform": "onnx_onnxv1",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "y", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "cat", "datatype": "BYTES", "shape": [-1, 1]},
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }


def test_versioned_metadata_and_readiness(client: TestClient) -> None:
    assert client.get("/v2/models/fraud/versions/1").json()["name"] == "fraud"
    response = client.get("/v2/models/fraud/versions/1/ready")
    assert (response.status_code, response.json()) == (200, {"name": "fraud", "ready": True})


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/fraud/versions/2",
        "/v2/models/fraud/versions/2/ready",
        "/v2/models/other",
        "/v2/models/other/ready",
        "/v2/models/other/versions/1",
    ],
)
def test_unknown_model_or_version_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "unknown model" in response.json()["error"]


def test_health_live_and_ready_when_started(client: TestClient) -> None:
    live, ready = client.get("/v2/health/live"), client.get("/v2/health/ready")
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert client.get("/v2/models/fraud/ready").status_code == 200


def test_not_ready_before_the_lifespan_has_loaded_the_model(model_dir: Path) -> None:
    client = TestClient(create_app(model_dir))  # no `with`: the lifespan does not run
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    model_ready = client.get("/v2/models/fraud/ready")
    assert (model_ready.status_code, model_ready.json()) == (503, {"name": "fraud", "ready": False})
    for response in (
        client.get("/v2/models/fraud"),
        client.post("/v2/models/fraud/infer", json=scoring_request()),
    ):
        assert response.status_code == 503
        assert response.json() == {"error": "model 'fraud' is not ready"}
    # An unknown model stays a 404 even while nothing is loaded.
    assert client.get("/v2/models/other/ready").status_code == 404


def test_not_ready_again_after_shutdown(model_dir: Path) -> None:
    with TestClient(create_app(model_dir)) as client:
        assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/health/ready").status_code == 503


def test_a_failing_model_load_fails_the_startup(model_dir: Path) -> None:
    def broken_session(identity: ModelIdentity) -> InferenceSession:
        raise ModelLoadError(f"{identity.artifact}: cannot load")

    app = create_app(model_dir, session_factory=broken_session)
    with pytest.raises(ModelLoadError, match="cannot load"), TestClient(app):
        pass
    assert app.startup_error is not None and "cannot load" in app.startup_error


def test_model_without_a_card_is_named_after_its_folder(bare_model_dir: Path) -> None:
    with TestClient(create_app(bare_model_dir)) as client:
        metadata = client.get("/v2/models/plain").json()
        assert (metadata["name"], metadata["versions"]) == ("plain", [])
        assert client.get("/v2/models/plain/versions/1").status_code == 404
        body = client.post("/v2/models/plain/infer", json=scoring_request()).json()
        assert body["model_name"] == "plain"
        assert "model_version" not in body
