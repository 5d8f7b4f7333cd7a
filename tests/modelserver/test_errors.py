"""Every way a request can fail: 400, 404, 405, 413 and 500, always ``{"error": ...}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.modelserver import asgi

from .support import TestClient, scoring_request
from .test_infer import echo_request

Request = dict[str, Any]


def _input(request: Request, name: str) -> dict[str, Any]:
    return next(tensor for tensor in request["inputs"] if tensor["name"] == name)


def _set(name: str, **fields: Any) -> Callable[[Request], None]:
    def mutate(request: Request) -> None:
        _input(request, name).update(fields)

    return mutate


def _drop_input(name: str) -> Callable[[Request], None]:
    def mutate(request: Request) -> None:
        request["inputs"] = [t for t in request["inputs"] if t["name"] != name]

    return mutate


def _add_input(tensor: dict[str, Any]) -> Callable[[Request], None]:
    return lambda request: request["inputs"].append(tensor)


def _set_top(**fields: Any) -> Callable[[Request], None]:
    return lambda request: request.update(fields)


INVALID_REQUESTS: list[tuple[str, Callable[[Request], None], str]] = [
    ("missing input", _drop_input("cat"), "missing input(s) 'cat'"),
    (
        "unknown input",
        _add_input({"name": "z", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}),
        "unknown input 'z'; the model's inputs are x, y, cat",
    ),
    (
        "duplicate input",
        _add_input({"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}),
        "input 'x' is given more than once",
    ),
    (
        "wrong datatype",
        _set("x", datatype="INT64", data=[1]),
        "input 'x' has datatype 'INT64' but the model expects FP32",
    ),
    (
        "unknown datatype",
        _set("x", datatype="FLOAT"),
        "input 'x' has datatype 'FLOAT' but the model expects FP32",
    ),
    ("no datatype", _set("x", datatype=None), "input 'x' has datatype None"),
    (
        "element count != product(shape)",
        _set("x", data=[1.0, 2.0, 3.0]),
        "input 'x' has 3 elements but shape [1, 1] holds 1",
    ),
    (
        "wrong rank",
        _set("x", shape=[1]),
        "input 'x' has shape [1] but the model expects [-1, 1]",
    ),
    (
        "wrong fixed dimension",
        _set("x", shape=[1, 2], data=[1.0, 2.0]),
        "input 'x' has shape [1, 2] but the model expects [-1, 1]",
    ),
    (
        "negative dimension",
        _set("x", shape=[-1, 1]),
        "input 'x' shape must be a list of non-negative integers",
    ),
    ("shape not a list", _set("x", shape="1,1"), "input 'x' shape must be a list"),
    ("no data", _set("x", data=None), "input 'x' has no data"),
    (
        "strings for FP32",
        _set("x", data=["0.1"]),
        "input 'x' has datatype FP32 but its data are strings",
    ),
    (
        "bools for FP32",
        _set("x", data=[True]),
        "input 'x' has datatype FP32 but its data are booleans",
    ),
    (
        "numbers for BYTES",
        _set("cat", data=[7]),
        "input 'cat' has datatype BYTES but its data are integers",
    ),
    (
        "objects in data",
        _set("x", data=[{"v": 1}]),
        "input 'x' has datatype FP32 but its data are mixed or non-scalar values",
    ),
    (
        "ragged nested data",
        _set("x", shape=[2, 1], data=[[1.0], [2.0, 3.0]]),
        "input 'x' data is not a rectangular array",
    ),
    (
        "unknown output",
        _set_top(outputs=[{"name": "score"}]),
        "unknown output 'score'; the model's outputs are label, probabilities",
    ),
    (
        "duplicate output",
        _set_top(outputs=[{"name": "label"}, {"name": "label"}]),
        "output 'label' is requested more than once",
    ),
    ("outputs not a list", _set_top(outputs={"name": "label"}), "outputs must be a list"),
    ("output without name", _set_top(outputs=[{}]), "each requested output must be an object"),
    ("id not a string", _set_top(id=42), "id must be a string"),
    ("parameters not an object", _set_top(parameters=[1]), "request parameters must be an object"),
    (
        "input parameters not an object",
        _set("x", parameters="binary"),
        "input 'x' parameters must be an object",
    ),
    ("inputs missing", lambda request: request.pop("inputs"), "inputs must be a non-empty list"),
    ("inputs empty", _set_top(inputs=[]), "inputs must be a non-empty list"),
    ("input without name", _set_top(inputs=[{"shape": [1]}]), "each input must be an object"),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [pytest.param(mutate, message, id=case) for case, mutate, message in INVALID_REQUESTS],
)
def test_invalid_requests_are_400_and_name_the_problem(
    client: TestClient, mutate: Callable[[Request], None], message: str
) -> None:
    request = scoring_request()
    mutate(request)
    response = client.post("/v2/models/fraud/infer", json=request)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/v2/models/fraud/infer", content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "i64",
            [[1.5, 2], [3, 4]],
            "input 'i64' has datatype INT64 but its data are floating-point",
        ),
        ("i8", [1, 128], "input 'i8' has values outside the INT8 range [-128, 127]"),
        ("u16", [-1, 0], "input 'u16' has values outside the UINT16 range [0, 65535]"),
        ("flag", [1, 0], "input 'flag' has datatype BOOL but its data are integers"),
        ("text", [True, False], "input 'text' has datatype BYTES but its data are booleans"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_400(
    echo_client: TestClient, name: str, data: list[Any], message: str
) -> None:
    request = echo_request()
    _input(request, name)["data"] = data
    response = echo_client.post("/v2/models/echo/infer", json=request)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/other/infer",
        "/v2/models/fraud/versions/2/infer",
        "/v2/models/other/versions/1/infer",
    ],
)
def test_infer_on_an_unknown_model_or_version_is_404(client: TestClient, path: str) -> None:
    response = client.post(path, json=scoring_request())
    assert response.status_code == 404
    assert response.json()["error"].startswith("unknown model 'other'") or (
        response.json()["error"] == "unknown model 'fraud' version '2'"
    )


@pytest.mark.parametrize(
    "path", ["/", "/v1/models/fraud:predict", "/v2/models/fraud/explain", "/v2/health"]
)
def test_unknown_routes_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": f"no route for {path}"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v2/models/fraud/infer", "POST"),
        ("POST", "/v2/models/fraud", "GET"),
        ("POST", "/v2/health/ready", "GET"),
        ("DELETE", "/v2", "GET"),
    ],
)
def test_wrong_method_is_405(client: TestClient, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert "error" in response.json()


def test_an_onnxruntime_failure_is_500_without_a_stack_trace(client: TestClient) -> None:
    # x has two rows and y three: only onnxruntime notices, when it broadcasts x + y.
    request = scoring_request([0.1, 0.2], [0.1, 0.2, 0.3], ["a", "b"])
    response = client.post("/v2/models/fraud/infer", json=request)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error.startswith("inference failed: ")
    assert "Traceback" not in error and "\n" not in error


def test_an_oversized_body_is_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi, "MAX_BODY_BYTES", 100)
    response = client.post("/v2/models/fraud/infer", json=scoring_request(x=[0.5] * 50))
    assert response.status_code == 413
    assert "over 100 bytes" in response.json()["error"]


def test_an_unknown_content_encoding_is_400(client: TestClient) -> None:
    response = client.post(
        "/v2/models/fraud/infer", content=b"{}", headers={"content-encoding": "br"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported Content-Encoding 'br'"}


def test_a_corrupt_compressed_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/v2/models/fraud/infer", content=b"not gzip", headers={"content-encoding": "gzip"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body cannot be decompressed")
