"""Fault modes, set at start (FaultConfig) or at runtime (POST /_debug/fault)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.modelserver import FaultConfig, create_app
from gateway.modelserver.errors import InvalidFaultConfig
from gateway.modelserver.faults import FaultInjector

from .support import TestClient, scoring_request
from .test_binary import binary_request, post_binary

THREE_ROWS = scoring_request([0.1, -2.0, 0.3], [0.2, 0.5, -0.4], ["online", "grocery", "x"])


def _outputs(client: TestClient, request: dict[str, Any] = THREE_ROWS) -> dict[str, Any]:
    response = client.post("/v2/models/fraud/infer", json=request)
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


def _client(model_dir: Path, fault: FaultConfig, **kwargs: Any) -> TestClient:
    return TestClient(create_app(model_dir, fault, **kwargs))


def test_error_mode_answers_500_injected_fault(model_dir: Path) -> None:
    with _client(model_dir, FaultConfig(mode="error")) as client:
        response = client.post("/v2/models/fraud/infer", json=scoring_request())
        assert (response.status_code, response.json()) == (500, {"error": "injected fault"})
        # Health and metadata keep working: only inference misbehaves.
        assert client.get("/v2/health/ready").status_code == 200


def test_nan_mode_turns_float_outputs_into_nan(model_dir: Path) -> None:
    with _client(model_dir, FaultConfig(mode="nan")) as client:
        outputs = _outputs(client)
        # JSON has no NaN: it is sent as null.
        assert outputs["probabilities"]["data"] == [None] * 6
        assert outputs["probabilities"]["shape"] == [3, 2]
        assert outputs["label"]["data"] == [1, 0, 0]  # integer outputs are left alone

        request = dict(THREE_ROWS, parameters={"binary_data_output": True})
        body, json_length = binary_request(request, set())
        _, _, arrays = post_binary(client, "/v2/models/fraud/infer", body, json_length)
        assert all(math.isnan(value) for value in arrays["probabilities"])


def test_out_of_range_mode_writes_1_7(model_dir: Path) -> None:
    with _client(model_dir, FaultConfig(mode="out-of-range")) as client:
        outputs = _outputs(client)
        assert outputs["probabilities"]["data"] == pytest.approx([1.7] * 6)
        assert outputs["label"]["data"] == [1, 0, 0]


def test_wrong_shape_mode_drops_the_last_column_of_2d_outputs(model_dir: Path) -> None:
    with TestClient(create_app(model_dir)) as client:
        healthy = _outputs(client)
    with _client(model_dir, FaultConfig(mode="wrong-shape")) as client:
        outputs = _outputs(client)
    assert outputs["probabilities"]["shape"] == [3, 1]
    assert outputs["probabilities"]["data"] == healthy["probabilities"]["data"][0::2]
    assert outputs["label"] == healthy["label"]


def test_wrong_batch_mode_returns_one_row_fewer(model_dir: Path) -> None:
    with TestClient(create_app(model_dir)) as client:
        healthy = _outputs(client)
    with _client(model_dir, FaultConfig(mode="wrong-batch")) as client:
        outputs = _outputs(client)
    assert outputs["probabilities"]["shape"] == [2, 2]
    assert outputs["probabilities"]["data"] == healthy["probabilities"]["data"][:4]
    assert (outputs["label"]["shape"], outputs["label"]["data"]) == ([2], [1, 0])


def test_slow_mode_sleeps_delay_ms_before_answering(model_dir: Path) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    fault = FaultConfig(mode="slow", delay_ms=250)
    with _client(model_dir, fault, sleep=record) as client:
        assert client.post("/v2/models/fraud/infer", json=scoring_request()).status_code == 200
        assert client.get("/v2/models/fraud").status_code == 200  # only infer is slowed
    assert slept == [0.25]


def test_slow_mode_really_waits(model_dir: Path) -> None:
    with _client(model_dir, FaultConfig(mode="slow", delay_ms=60)) as client:
        started = time.perf_counter()
        response = client.post("/v2/models/fraud/infer", json=scoring_request())
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.06


def test_rate_applies_the_fault_to_that_fraction_reproducibly(model_dir: Path) -> None:
    def statuses() -> list[int]:
        with _client(model_dir, FaultConfig(mode="error", rate=0.3, seed=11)) as client:
            return [
                client.post("/v2/models/fraud/infer", json=scoring_request()).status_code
                for _ in range(200)
            ]

    first = statuses()
    assert 40 <= first.count(500) <= 80
    assert set(first) == {200, 500}
    assert statuses() == first  # same seed, same sequence


@pytest.mark.parametrize(("rate", "failures"), [(0.0, 0), (1.0, 20)])
def test_rate_bounds(model_dir: Path, rate: float, failures: int) -> None:
    with _client(model_dir, FaultConfig(mode="error", rate=rate)) as client:
        codes = [
            client.post("/v2/models/fraud/infer", json=scoring_request()).status_code
            for _ in range(20)
        ]
    assert codes.count(500) == failures


def test_invalid_requests_stay_400_under_a_fault(model_dir: Path) -> None:
    with _client(model_dir, FaultConfig(mode="error")) as client:
        response = client.post("/v2/models/fraud/infer", json={"inputs": []})
    assert response.status_code == 400


def test_runtime_fault_endpoint_switches_modes(client: TestClient) -> None:
    assert client.get("/_debug/fault").json() == {
        "mode": "normal", "delay_ms": 0.0, "rate": 1.0, "seed": 0,
    }  # fmt: skip
    response = client.post("/_debug/fault", json={"mode": "error", "rate": 1})
    assert response.status_code == 200
    assert response.json() == {"mode": "error", "delay_ms": 0.0, "rate": 1, "seed": 0}
    assert client.post("/v2/models/fraud/infer", json=scoring_request()).status_code == 500

    # A POST replaces the whole config: omitted keys go back to their defaults.
    client.post("/_debug/fault", json={"mode": "slow", "delay_ms": 1})
    assert client.get("/_debug/fault").json()["rate"] == 1.0
    assert client.post("/_debug/fault", json={}).json()["mode"] == "normal"
    assert client.post("/v2/models/fraud/infer", json=scoring_request()).status_code == 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"mode": "flaky"}, "mode must be one of normal, slow, error, nan, out-of-range"),
        ({"rate": 1.5}, "rate must be a number in [0, 1], not 1.5"),
        ({"rate": True}, "rate must be a number in [0, 1], not True"),
        ({"delay_ms": -5}, "delay_ms must be a finite number >= 0, not -5"),
        ({"seed": "7"}, "seed must be an integer, not '7'"),
        ({"mode": "nan", "delay": 5}, "unknown fault config key(s): delay"),
        ([1], "the fault config must be a JSON object"),
    ],
)
def test_runtime_fault_endpoint_rejects_bad_configs(
    client: TestClient, payload: Any, message: str
) -> None:
    response = client.post("/_debug/fault", content=orjson.dumps(payload))
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.get("/_debug/fault").json()["mode"] == "normal"  # unchanged


def test_fault_config_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidFaultConfig) as caught:
        FaultConfig(mode="flaky", delay_ms=-1, rate=2)  # type: ignore[arg-type]
    assert str(caught.value).count(";") == 2


def test_injector_draws_nothing_in_normal_mode() -> None:
    injector = FaultInjector(FaultConfig())
    assert {injector.draw() for _ in range(50)} == {"normal"}
