"""Triton's binary tensor data extension, as tritonclient's HTTP client uses it."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.modelserver.binary import decode_tensor, encode_tensor
from gateway.modelserver.errors import InvalidRequest

from .support import TestClient, scoring_request
from .test_infer import ECHO_DATA, echo_request
from .tiny_model import ECHO_TENSORS

WIRE = {
    "BOOL": "|b1", "INT8": "<i1", "INT64": "<i8", "UINT16": "<u2",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def to_wire(datatype: str, data: list[Any]) -> bytes:
    """Encode like tritonclient's ``set_data_from_numpy(..., binary_data=True)``."""
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).ravel()
        return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in flat)
    return np.asarray(data, dtype=WIRE[datatype]).tobytes()


def binary_request(request: dict[str, Any], binary_inputs: set[str]) -> tuple[bytes, int]:
    """Move the named inputs' data to the binary section; returns body and JSON length."""
    blobs = []
    for tensor in request["inputs"]:
        if tensor["name"] in binary_inputs:
            blob = to_wire(tensor["datatype"], tensor.pop("data"))
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
    header = orjson.dumps(request)
    return header + b"".join(blobs), len(header)


def post_binary(
    client: TestClient, path: str, body: bytes, json_length: int
) -> tuple[int, dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """POST a binary request; returns status, the JSON part and decoded binary outputs."""
    response = client.post(
        path,
        content=body,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(json_length),
        },
    )
    length = int(response.headers.get("inference-header-content-length", len(response.content)))
    doc = orjson.loads(response.content[:length])
    arrays, offset = {}, length
    for output in doc.get("outputs", []):
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            continue
        raw = response.content[offset : offset + size]
        offset += size
        if output["datatype"] == "BYTES":
            arrays[output["name"]] = _split_bytes(raw)
        else:
            arrays[output["name"]] = np.frombuffer(raw, dtype=WIRE[output["datatype"]])
    assert offset == len(response.content)
    return response.status_code, doc, arrays


def _split_bytes(raw: bytes) -> np.ndarray[Any, Any]:
    items, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + n].decode())
        offset += 4 + n
    return np.asarray(items, dtype=object)


def test_binary_inputs_and_outputs_as_tritonclient_sends_them(client: TestClient) -> None:
    x, y, cat = [0.1, -2.0], [0.2, 0.5], ["online", "grocery"]
    expected = client.post("/v2/models/fraud/infer", json=scoring_request(x, y, cat)).json()
    # tritonclient asks for binary outputs with this parameter when no outputs are listed.
    request = scoring_request(x, y, cat, parameters={"binary_data_output": True}, id="b-1")
    body, json_length = binary_request(request, {"x", "y", "cat"})
    status, doc, arrays = post_binary(client, "/v2/models/fraud/infer", body, json_length)
    assert status == 200
    assert (doc["model_name"], doc["id"]) == ("fraud", "b-1")
    for want, got in zip(expected["outputs"], doc["outputs"], strict=True):
        assert (got["name"], got["datatype"], got["shape"]) == (
            want["name"], want["datatype"], want["shape"],
        )  # fmt: skip
        assert "data" not in got
        assert arrays[got["name"]].tolist() == pytest.approx(want["data"])


def test_response_headers_of_a_binary_response(client: TestClient) -> None:
    body, json_length = binary_request(
        scoring_request(parameters={"binary_data_output": True}), set()
    )
    response = client.post(
        "/v2/models/fraud/infer",
        content=body,
        headers={"inference-header-content-length": str(json_length)},
    )
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers["inference-header-content-length"])
    assert orjson.loads(response.content[:header_length])["outputs"][0]["name"] == "label"
    assert int(response.headers["content-length"]) == header_length + 8 + 8  # INT64 + 2 x FP32


def test_per_output_binary_data_overrides_the_request_default(client: TestClient) -> None:
    request = scoring_request(
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "label", "parameters": {"binary_data": False}},
            {"name": "probabilities"},
        ],
    )
    body, json_length = binary_request(request, {"cat"})
    status, doc, arrays = post_binary(client, "/v2/models/fraud/infer", body, json_length)
    assert status == 200
    label, probabilities = doc["outputs"]
    assert label["data"] == [1]
    assert probabilities["parameters"]["binary_data_size"] == 8
    assert set(arrays) == {"probabilities"}


def test_json_only_outputs_need_no_header_length(client: TestClient) -> None:
    body, json_length = binary_request(scoring_request(), {"x"})
    response = client.post(
        "/v2/models/fraud/infer",
        content=body,
        headers={"inference-header-content-length": str(json_length)},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers


def test_every_datatype_round_trips_as_binary(echo_client: TestClient) -> None:
    request = echo_request()
    request["parameters"] = {"binary_data_output": True}
    body, json_length = binary_request(request, set(ECHO_TENSORS))
    status, doc, arrays = post_binary(echo_client, "/v2/models/echo/infer", body, json_length)
    assert status == 200
    for name, (_, datatype, shape) in ECHO_TENSORS.items():
        output = next(o for o in doc["outputs"] if o["name"] == f"{name}_out")
        assert (output["datatype"], output["shape"]) == (datatype, [2, *shape[1:]])
        expected = np.asarray(ECHO_DATA[name], dtype=object if datatype == "BYTES" else None)
        assert arrays[f"{name}_out"].tolist() == expected.ravel().tolist()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda body, n: (body + b"\0", n), "9 bytes of binary tensor data but the inputs"),
        (lambda body, n: (body[:-1], n), "input 'y' binary data runs past the end of the body"),
        (lambda body, n: (body, len(body) + 1), "Inference-Header-Content-Length is"),
        (lambda body, n: (body, "ten"), "Inference-Header-Content-Length must be an integer"),
    ],
)
def test_inconsistent_binary_sections_are_400(
    client: TestClient, tamper: Any, message: str
) -> None:
    body, json_length = binary_request(scoring_request(), {"x", "y"})
    body, json_length = tamper(body, json_length)
    response = client.post(
        "/v2/models/fraud/infer",
        content=body,
        headers={"inference-header-content-length": str(json_length)},
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_data_and_binary_data_size_together_are_400(client: TestClient) -> None:
    request = scoring_request()
    request["inputs"][0]["parameters"] = {"binary_data_size": 4}
    header = orjson.dumps(request)
    response = client.post(
        "/v2/models/fraud/infer",
        content=header + to_wire("FP32", [0.1]),
        headers={"inference-header-content-length": str(len(header))},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "input 'x' has both data and binary_data_size"


@pytest.mark.parametrize(
    ("datatype", "raw", "message"),
    [
        ("FP32", b"\0" * 6, "input 't' has 6 bytes of binary data but shape [2] of FP32 needs 8"),
        ("BYTES", b"\x01\0\0", "input 't' has a truncated BYTES length prefix"),
        ("BYTES", b"\x05\0\0\0ab", "input 't' has a BYTES element running past its data"),
        ("BYTES", b"\x01\0\0\0\xff\x01\0\0\0a", "input 't' has a BYTES element that is not UTF-8"),
        ("BYTES", b"\x01\0\0\0a", "input 't' has 1 elements but shape [2] holds 2"),
    ],
)
def test_malformed_binary_tensors(datatype: str, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_tensor("t", datatype, (2,), raw)
    assert str(caught.value) == message


def test_binary_bool_treats_any_nonzero_byte_as_true() -> None:
    assert decode_tensor("t", "BOOL", (3,), b"\x00\x01\x07").tolist() == [False, True, True]


def test_bytes_encoding_layout() -> None:
    encoded = encode_tensor("BYTES", np.asarray(["ab", "c"], dtype=object))
    assert encoded == b"\x02\0\0\0ab\x01\0\0\0c"
