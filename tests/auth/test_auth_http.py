"""API keys over HTTP, in process: the answers, what stays open, what a refusal never touches."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from local_http import serving_in_thread
from modelserver.support import TestClient
from support import MODELS

from gateway.app import create_app
from gateway.settings import load_config

KEY = "fraud-team-key-1"
READER_KEY = "reader-key-2"
V1_ROW = {"customer_id": "c-0042", "amount": 120.5, "merchant_category": "grocery",
          "hour": 14, "is_foreign": False}  # fmt: skip


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Counting:
    """A feature store and model server in one, counting every request it is sent."""

    def __init__(self) -> None:
        self.requests = 0
        self.lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.Response:
        with self.lock:
            self.requests += 1
        return web.json_response({"error": "not here"}, status=500)


@pytest.fixture
def counting() -> Iterator[tuple[Counting, str]]:
    backend = Counting()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend.handle)
    with serving_in_thread(app) as url:
        yield backend, url


def write(folder: Path, url: str, auth: str) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
server: {{reload: {{interval_ms: 50}}}}
feature_store: {{url: "{url}", timeout_ms: 200, hedge_after_ms: null}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{url}", timeout_ms: 500}}
  fraud-b:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-b, url: "{url}", timeout_ms: 500}}
{auth}"""
    )
    return path


def auth_section(rate: float = 1000, extra: str = "") -> str:
    return f"""auth:{extra}
  api_keys:
    - {{name: fraud-team, sha256: {sha(KEY)}, rate_per_second: {rate}, burst: 2, models: [fraud]}}
    - {{name: reader, sha256: {sha(READER_KEY)}, models: [fraud-b]}}
"""


def test_without_a_key_nothing_is_read_or_called(
    tmp_path: Path, counting: tuple[Counting, str]
) -> None:
    backend, url = counting
    with TestClient(create_app(load_config(write(tmp_path, url, auth_section())))) as client:
        for headers in ({}, {"x-api-key": "guess"}, {"authorization": f"Bearer {sha(KEY)}"}):
            for path in ("/v1/models/fraud:predict", "/v2/models/fraud/infer"):
                answer = client.post(path, content=b"{not json", headers=headers)
                assert answer.status_code == 401, answer.text
                assert answer.json()["error"].startswith("a valid API key is required")
                assert answer.headers["www-authenticate"] == 'Bearer realm="gateway"'
                assert "traceparent" in answer.headers
        forbidden = client.post(
            "/v1/models/fraud-b:predict", json={"instances": [V1_ROW]}, headers={"x-api-key": KEY}
        )
        assert forbidden.status_code == 403
        assert forbidden.json() == {
            "error": "API key 'fraud-team' may not call model 'fraud-b'; it may call ['fraud']"
        }
        assert backend.requests == 0  # no feature lookup, no upstream call
        allowed = client.post(
            "/v1/models/fraud:predict", json={"instances": [V1_ROW]}, headers={"x-api-key": KEY}
        )
        assert allowed.status_code in (502, 503)  # past the gate: the backend answers 500s
        assert backend.requests > 0
        metrics = client.get("/metrics").text
    assert 'gateway_auth_decisions_total{decision="unauthenticated",key="<none>"} 6.0' in metrics
    assert 'gateway_auth_decisions_total{decision="forbidden",key="fraud-team"} 1.0' in metrics
    assert 'gateway_auth_decisions_total{decision="allowed",key="fraud-team"} 1.0' in metrics
    assert 'gateway_requests_total{api="v1",model="fraud",outcome="unauthenticated"} 3.0' in metrics
    assert KEY not in metrics and sha(KEY) not in metrics


def test_over_the_rate_answers_429_with_retry_after(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "http://127.0.0.1:9", auth_section(rate=0.5)))
    with TestClient(create_app(config)) as client:
        answers = [
            client.post("/v2/models/fraud/infer", content=b"{}", headers={"x-api-key": KEY})
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [400, 400, 429]  # burst 2: the body is read
    limited = answers[2]
    assert limited.headers["retry-after"] == "2"  # one token per 2 s
    assert "over its rate limit (0.5 requests/s, burst 2)" in limited.json()["error"]


def test_an_unknown_model_name_is_not_a_metric_label(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "http://127.0.0.1:9", auth_section()))
    with TestClient(create_app(config)) as client:
        assert client.post("/v2/models/made-up-1/infer").status_code == 401
        assert client.post("/v2/models/made-up-2/infer", headers={"x-api-key": KEY}).status_code == 403  # fmt: skip
        metrics = client.get("/metrics").text
    assert "made-up" not in metrics
    assert 'model="<unknown>",outcome="unauthenticated"' in metrics
    assert 'model="<unknown>",outcome="forbidden"' in metrics


def test_health_metrics_and_metadata_stay_open_by_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "http://127.0.0.1:9", auth_section()))
    with TestClient(create_app(config)) as client:
        for path in ("/v2/health/live", "/v2", "/v2/models/fraud", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        assert client.get("/v2/models/fraud/ready").status_code in (200, 503)
        document = client.get("/openapi.json").json()
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert {"401", "403", "429"} <= set(infer["responses"])
    assert infer["security"] == [{"apiKeyBearer": []}, {"apiKey": []}]
    assert "security" not in document["paths"]["/v2/models/{model}"]["get"]
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"


def test_protect_metadata_puts_metadata_behind_the_keys(tmp_path: Path) -> None:
    section = auth_section(extra="\n  protect_metadata: true")
    config = load_config(write(tmp_path, "http://127.0.0.1:9", section))
    with TestClient(create_app(config)) as client:
        for path in ("/v2", "/v2/models/fraud", "/v2/models/fraud/ready", "/openapi.json"):
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/v2/models/fraud", headers={"x-api-key": KEY}).status_code == 200
        assert client.get("/v2/models/fraud-b", headers={"x-api-key": KEY}).status_code == 403
        assert client.get("/v2/models/fraud-b", headers={"x-api-key": READER_KEY}).status_code == 200  # fmt: skip
        assert client.get("/openapi.json", headers={"x-api-key": READER_KEY}).status_code == 200
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            assert client.get(path).status_code in (200, 503), path  # never 401


def test_without_auth_nothing_changes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "http://127.0.0.1:9", ""))
    with TestClient(create_app(config)) as client:
        answer = client.post("/v2/models/fraud/infer", content=b"{}")
        document = client.get("/openapi.json").json()
    assert answer.status_code == 400
    assert "apiKey" not in document["components"]["securitySchemes"]


def test_keys_reload_live_from_a_rotated_keys_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    keys_file = secrets / "api-keys.yaml"
    keys_file.write_text(f"api_keys:\n  - {{name: old, sha256: {sha('old-key')}}}\n")
    section = "auth:\n  api_keys_file: secrets/api-keys.yaml\n"
    config = load_config(write(tmp_path, "http://127.0.0.1:9", section))
    with TestClient(create_app(config)) as client:

        def status(key: str) -> int:
            headers = {"x-api-key": key}
            return client.post("/v2/models/fraud/infer", content=b"{}", headers=headers).status_code  # fmt: skip

        assert (status("old-key"), status("new-key")) == (400, 401)
        # A Secret update: the file is replaced by a rename; the config file is untouched.
        staged = secrets / ".api-keys.yaml.new"
        staged.write_text(f"api_keys:\n  - {{name: new, sha256: {sha('new-key')}}}\n")
        staged.replace(keys_file)
        deadline = time.monotonic() + 5
        while status("new-key") != 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (status("old-key"), status("new-key")) == (401, 400)
        # A broken keys file is refused whole: the running keys stay.
        staged.write_text("api_keys:\n  - {name: broken, sha256: nope}\n")
        staged.replace(keys_file)
        time.sleep(0.5)
        assert status("new-key") == 400
        metrics = client.get("/metrics").text
    assert 'gateway_config_reloads_total{result="rejected"} 1.0' in metrics
