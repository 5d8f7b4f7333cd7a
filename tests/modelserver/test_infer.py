"""Inference with JSON tensors: data layouts, id echo, output filtering, datatypes."""

from __future__ import annotations

import gzip
import math
import zlib
from typing import Any

import orjson
import pytest

from .support import TestClient, scoring_request
from .tiny_model import ECHO_TENSORS


def _p_fraud(x: float, y: float, cat: str) -> float:
    z = x + y + {"online": 1.0, "travel": 0.5}.get(cat, 0.0)
    return 1.0 / (1.0 + math.exp(-2.0 * z))


def test_infer_with_flat_data(client: TestClient) -> None:
    x, y, cat = [0.1, -2.0, 0.3], [0.2, 0.5, -0.4], ["online", "grocery", "travel"]
    response = client.post("/v2/models/fraud/infer", json=scoring_request(x, y, cat))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("fraud", "1")
    assert "id" not in body
    label, probabilities = body["outputs"]
    assert {k: label[k] for k in ("name", "datatype", "shape")} == {
        "name": "label",
        "datatype": "INT64",
        "shape": [3],
    }
    assert {k: probabilities[k] for k in ("name", "datatype", "shape")} == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [3, 2],
    }
    rows = [probabilities["data"][i : i + 2] for i in range(0, 6, 2)]
    for row, (xi, yi, ci), lab in zip(
        rows, zip(x, y, cat, strict=True), label["data"], strict=True
    ):
        assert sum(row) == pytest.approx(1.0, abs=1e-6)
        assert row[1] == pytest.approx(_p_fraud(xi, yi, ci), abs=1e-6)
        assert lab == int(row[1] > row[0])


def test_the_bytes_input_reaches_the_model(client: TestClient) -> None:
    request = scoring_request([-0.3, -0.3], [0.0, 0.0], ["online", "grocery"])
    label = client.post("/v2/models/fraud/infer", json=request).json()["outputs"][0]
    assert label["data"] == [1, 0]


def test_nested_data_means_the_same_as_flat(client: TestClient) -> None:
    flat = scoring_request([0.1, 0.4], [0.2, -0.3], ["online", "travel"])
    nested = scoring_request([0.1, 0.4], [0.2, -0.3], ["online", "travel"])
    for tensor in nested["inputs"]:
        tensor["data"] = [[value] for value in tensor["data"]]
    assert (
        client.post("/v2/models/fraud/infer", json=nested).json()
        == client.post("/v2/models/fraud/infer", json=flat).json()
    )


def test_ints_are_accepted_for_float_inputs(client: TestClient) -> None:
    ints = client.post("/v2/models/fraud/infer", json=scoring_request([1], [0], ["x"]))
    floats = client.post("/v2/models/fraud/infer", json=scoring_request([1.0], [0.0], ["x"]))
    assert ints.status_code == 200
    assert ints.json() == floats.json()


def test_the_request_id_is_echoed(client: TestClient) -> None:
    body = client.post("/v2/models/fraud/infer", json=scoring_request(id="req-42")).json()
    assert body["id"] == "req-42"


def test_the_versioned_path_infers_too(client: TestClient) -> None:
    response = client.post("/v2/models/fraud/versions/1/infer", json=scoring_request())
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"


def test_outputs_limit_the_response(client: TestClient) -> None:
    request = scoring_request(outputs=[{"name": "probabilities"}])
    outputs = client.post("/v2/models/fraud/infer", json=request).json()["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities"]


def test_outputs_come_back_in_the_requested_order(client: TestClient) -> None:
    request = scoring_request(outputs=[{"name": "probabilities"}, {"name": "label"}])
    outputs = client.post("/v2/models/fraud/infer", json=request).json()["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities", "label"]


def test_request_parameters_are_accepted(client: TestClient) -> None:
    request = scoring_request(parameters={"x-gateway-variant": "primary", "priority": 1})
    request["inputs"][0]["parameters"] = {"note": "ignored"}
    assert client.post("/v2/models/fraud/infer", json=request).status_code == 200


def test_a_zero_row_batch_is_answered(client: TestClient) -> None:
    response = client.post("/v2/models/fraud/infer", json=scoring_request([], [], []))
    assert response.status_code == 200
    label, probabilities = response.json()["outputs"]
    assert (label["shape"], label["data"]) == ([0], [])
    assert (probabilities["shape"], probabilities["data"]) == ([0, 2], [])


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_requests_are_accepted(client: TestClient, encoding: str, compress: Any) -> None:
    plain = client.post("/v2/models/fraud/infer", json=scoring_request())
    response = client.post(
        "/v2/models/fraud/infer",
        content=compress(orjson.dumps(scoring_request())),
        headers={"content-encoding": encoding, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == plain.json()


ECHO_DATA: dict[str, list[Any]] = {
    "i64": [[1, -(2**62)], [2**62, 0]],
    "i8": [-128, 127],
    "u16": [0, 65535],
    "f64": [0.1, -1e300],
    "f16": [0.5, -2.0],
    "flag": [True, False],
    "text": ["grocery", "é ü"],
}


def echo_request(data: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    data = ECHO_DATA if data is None else data
    inputs = []
    for name, (_, datatype, shape) in ECHO_TENSORS.items():
        inputs.append(
            {"name": name, "datatype": datatype, "shape": [2, *shape[1:]], "data": data[name]}
        )
    return {"inputs": inputs}


def test_every_datatype_round_trips_through_json(echo_client: TestClient) -> None:
    response = echo_client.post("/v2/models/echo/infer", json=echo_request())
    assert response.status_code == 200
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    for name, (_, datatype, shape) in ECHO_TENSORS.items():
        output = outputs[f"{name}_out"]
        assert output["datatype"] == datatype
        assert output["shape"] == [2, *shape[1:]]
        expected = ECHO_DATA[name]
        flat = [v for row in expected for v in row] if isinstance(expected[0], list) else expected
        assert output["data"] == flat
