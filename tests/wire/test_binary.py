"""The binary tensor codec shared by the gateway and its model server."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.wire.binary import (
    BinaryDataError,
    OutputForms,
    attach_binary_data,
    decode_answer,
    decode_flat,
    encode_answer,
    encode_tensor,
    split_body,
    take_output_forms,
)


def test_bytes_elements_carry_little_endian_length_prefixes() -> None:
    raw = encode_tensor("BYTES", np.array([["ab"], ["c"]], dtype=object))
    assert raw == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert decode_flat("x", "BYTES", raw) == ["ab", "c"]


@pytest.mark.parametrize(
    ("datatype", "values"),
    [("FP32", [0.5, -2.25]), ("INT64", [2**40, -3]), ("BOOL", [True, False]), ("UINT8", [0, 255]),
     ("FP64", [1e300, -0.0]), ("INT8", [-128, 127])],
)  # fmt: skip
def test_fixed_size_tensors_round_trip_as_numpy_views(datatype: str, values: list[Any]) -> None:
    raw = encode_tensor(datatype, values)
    decoded = decode_flat("x", datatype, raw)
    assert isinstance(decoded, np.ndarray)
    assert decoded.tolist() == values


def test_fixed_size_elements_are_a_view_of_the_body_not_a_copy() -> None:
    body = bytearray(encode_tensor("FP32", [1.0, 2.0]))
    decoded = decode_flat("x", "FP32", memoryview(body))
    assert isinstance(decoded, np.ndarray)
    body[:4] = struct.pack("<f", 7.0)
    assert decoded[0] == 7.0


def request_doc(*sizes: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": f"t{i}", "datatype": "INT32", "shape": [size // 4],
             "parameters": {"binary_data_size": size}}
            for i, size in enumerate(sizes)
        ]
    }  # fmt: skip


def test_attach_gives_each_binary_tensor_its_data_and_drops_the_size() -> None:
    doc = request_doc(8, 4)
    doc["inputs"].append({"name": "j", "datatype": "INT32", "shape": [1], "data": [9]})
    blob = struct.pack("<3i", 1, 2, 3)
    assert attach_binary_data(doc["inputs"], memoryview(blob), "inputs") is True
    first, second, json_tensor = doc["inputs"]
    assert first["data"].tolist() == [1, 2] and "parameters" not in first
    assert second["data"].tolist() == [3]
    assert json_tensor["data"] == [9]


@pytest.mark.parametrize(
    ("doc", "blob", "message"),
    [
        (request_doc(8), b"\0" * 4, "binary data runs past the end of the body"),
        (request_doc(4), b"\0" * 8, "8 bytes of binary tensor data but the inputs' binary_data_size add up to 4"),
        (request_doc(6), b"\0" * 6, "6 bytes of binary data, not a whole number of INT32 elements"),
        ({"inputs": [{"name": "x", "datatype": "INT32", "data": [1],
                      "parameters": {"binary_data_size": 4}}]}, b"\0" * 4, "both data and binary_data_size"),
        ({"inputs": [{"name": "x", "datatype": "INT32",
                      "parameters": {"binary_data_size": -4}}]}, b"", "must be a non-negative integer"),
        ({"inputs": [{"name": "x", "datatype": "FP8",
                      "parameters": {"binary_data_size": 1}}]}, b"\0", "^inputs[0] 'x' has datatype 'FP8', not an OIP datatype"),  # the name quoted once
        ({"inputs": [{"name": "s", "datatype": "BYTES",
                      "parameters": {"binary_data_size": 3}}]}, b"\x01\0\0", "truncated BYTES length prefix"),
        ({"inputs": [{"name": "s", "datatype": "BYTES",
                      "parameters": {"binary_data_size": 5}}]}, b"\x01\0\0\0\xff", "not UTF-8"),
    ],
)  # fmt: skip
def test_attach_refuses_bodies_that_do_not_add_up(doc: Any, blob: bytes, message: str) -> None:
    with pytest.raises(BinaryDataError, match=message.replace("[", r"\[")):
        attach_binary_data(doc["inputs"], memoryview(blob), "inputs")


def test_split_body_refuses_a_header_length_past_the_body() -> None:
    with pytest.raises(BinaryDataError, match="is 10 but the body has 3 bytes"):
        split_body(b"{}x", 10)


def test_output_forms_are_taken_out_of_the_request() -> None:
    doc: dict[str, Any] = {
        "parameters": {"binary_data_output": True},
        "inputs": [],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "p"}],
    }
    forms = take_output_forms(doc)
    assert forms == OutputForms(True, {"label": False})
    assert doc == {"inputs": [], "outputs": [{"name": "label"}, {"name": "p"}]}
    assert take_output_forms({"inputs": []}) is None


def test_an_answer_encoded_with_binary_outputs_decodes_to_the_same_document() -> None:
    answer = {
        "model_name": "m",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
            {"name": "p", "datatype": "FP32", "shape": [2, 2], "data": [[0.25, 0.75], [1.0, 0.0]]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["é"]},
        ],
    }
    expected = orjson.loads(orjson.dumps(answer))
    expected["outputs"][1]["data"] = [0.25, 0.75, 1.0, 0.0]  # binary data is flat
    body, length = encode_answer(answer, OutputForms(True, {"label": False}))
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["outputs"][0]["data"] == [1, 0]  # label stays JSON
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert header["outputs"][2]["parameters"] == {"binary_data_size": 6}
    assert len(body) == length + 16 + 6
    decoded = orjson.loads(
        orjson.dumps(decode_answer(body, length), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    assert decoded == expected


def test_no_binary_output_leaves_a_plain_json_answer() -> None:
    answer = {"outputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": [0.5]}]}
    body, length = encode_answer(answer, OutputForms(False, {"q": True}))
    assert length is None
    assert orjson.loads(body) == answer
