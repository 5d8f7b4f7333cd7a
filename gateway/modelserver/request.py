"""Decode and validate an OIP inference request against the model's inputs and outputs.

JSON tensors and Triton binary tensors (``binary.py``) are both accepted. Every check
that onnxruntime would otherwise fail with an opaque error is done here, so a client
mistake is a 400 that names the tensor and the problem, e.g.
``input 'x' has 3 elements but shape [2, 1] holds 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Final

import numpy as np
import orjson

from gateway.modelserver.binary import decode_tensor
from gateway.modelserver.datatypes import ACCEPTED_JSON_KINDS, INTEGER_LIMITS
from gateway.modelserver.errors import InvalidRequest
from gateway.modelserver.model import OnnxModel, TensorSpec

_KIND_NAMES: Final = {
    "b": "booleans",
    "i": "integers",
    "u": "integers",
    "f": "floating-point numbers",
    "U": "strings",
}


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output to return, and whether it goes back as binary tensor data."""

    spec: TensorSpec
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A validated request: arrays ready for onnxruntime and the outputs to return."""

    id: str | None
    feeds: dict[str, np.ndarray[Any, Any]]
    outputs: tuple[RequestedOutput, ...]


def decode_infer_request(body: bytes, header_length: int | None, model: OnnxModel) -> InferRequest:
    """Parse ``body`` (JSON, then binary tensors when ``header_length`` is given)."""
    if header_length is None:
        header, binary = body, b""
    elif 0 <= header_length <= len(body):
        header, binary = body[:header_length], body[header_length:]
    else:
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidRequest("request body must be a JSON object")

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("id must be a string")
    parameters = _parameters(doc, "request")
    binary_output = parameters.get("binary_data_output") is True

    feeds = _decode_inputs(doc.get("inputs"), binary, model)
    outputs = _requested_outputs(doc.get("outputs"), binary_output, model)
    return InferRequest(id=request_id, feeds=feeds, outputs=outputs)


def _decode_inputs(
    entries: object, binary: bytes, model: OnnxModel
) -> dict[str, np.ndarray[Any, Any]]:
    if not isinstance(entries, list) or not entries:
        raise InvalidRequest("inputs must be a non-empty list")
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidRequest("each input must be an object with a string name")
        name: str = entry["name"]
        spec = model.input_by_name.get(name)
        if spec is None:
            raise InvalidRequest(
                f"unknown input {name!r}; the model's inputs are {', '.join(model.input_by_name)}"
            )
        if name in feeds:
            raise InvalidRequest(f"input {name!r} is given more than once")
        datatype = entry.get("datatype")
        if datatype != spec.datatype:
            raise InvalidRequest(
                f"input {name!r} has datatype {datatype!r} but the model expects {spec.datatype}"
            )
        shape = _shape(name, entry.get("shape"), spec)
        size = _parameters(entry, f"input {name!r}").get("binary_data_size")
        if size is None:
            feeds[name] = _from_json(name, spec, shape, entry.get("data"))
            continue
        if type(size) is not int or size < 0:
            raise InvalidRequest(f"input {name!r} binary_data_size must be a non-negative integer")
        if "data" in entry:
            raise InvalidRequest(f"input {name!r} has both data and binary_data_size")
        if offset + size > len(binary):
            raise InvalidRequest(f"input {name!r} binary data runs past the end of the body")
        feeds[name] = decode_tensor(name, spec.datatype, shape, binary[offset : offset + size])
        offset += size

    missing = [name for name in model.input_by_name if name not in feeds]
    if missing:
        raise InvalidRequest(f"missing input(s) {', '.join(map(repr, missing))}")
    if offset != len(binary):
        raise InvalidRequest(
            f"the body has {len(binary)} bytes of binary tensor data "
            f"but the inputs' binary_data_size add up to {offset}"
        )
    return feeds


def _shape(name: str, shape: object, spec: TensorSpec) -> tuple[int, ...]:
    # One plain loop: this runs for every input of every request.
    if type(shape) is list and len(shape) == len(spec.shape):
        for want, got in zip(spec.shape, shape, strict=True):
            if type(got) is not int or got < 0 or (want != -1 and want != got):
                break
        else:
            return tuple(shape)
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise InvalidRequest(f"input {name!r} shape must be a list of non-negative integers")
    raise InvalidRequest(
        f"input {name!r} has shape {shape} but the model expects {list(spec.shape)}"
    )


def _from_json(
    name: str, spec: TensorSpec, shape: tuple[int, ...], data: object
) -> np.ndarray[Any, Any]:
    if data is None:
        raise InvalidRequest(f"input {name!r} has no data")
    try:
        # Let numpy infer the JSON values' kind first, so "1.5" or 1.5 are refused for an
        # integer input instead of being parsed or truncated by a direct cast.
        array = np.asarray(data)
    except ValueError as exc:
        raise InvalidRequest(f"input {name!r} data is not a rectangular array") from exc
    expected = prod(shape)
    if array.size != expected:
        raise InvalidRequest(
            f"input {name!r} has {array.size} elements but shape {list(shape)} holds {expected}"
        )
    if expected:
        kind = array.dtype.kind
        if kind not in ACCEPTED_JSON_KINDS[spec.datatype]:
            found = _KIND_NAMES.get(kind, "mixed or non-scalar values")
            raise InvalidRequest(
                f"input {name!r} has datatype {spec.datatype} but its data are {found}"
            )
        limits = INTEGER_LIMITS.get(spec.datatype)
        if limits is not None and not np.can_cast(array.dtype, spec.dtype):
            low, high = limits
            if array.min() < low or array.max() > high:
                raise InvalidRequest(
                    f"input {name!r} has values outside the {spec.datatype} range [{low}, {high}]"
                )
    return array.astype(spec.dtype, copy=False).reshape(shape)


def _requested_outputs(
    entries: object, binary_output: bool, model: OnnxModel
) -> tuple[RequestedOutput, ...]:
    if entries is None or entries == []:
        return tuple(RequestedOutput(spec, binary_output) for spec in model.outputs)
    if not isinstance(entries, list):
        raise InvalidRequest("outputs must be a list")
    requested: dict[str, RequestedOutput] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidRequest("each requested output must be an object with a string name")
        name: str = entry["name"]
        spec = model.output_by_name.get(name)
        if spec is None:
            raise InvalidRequest(
                f"unknown output {name!r}; the model's outputs are {', '.join(model.output_by_name)}"
            )
        if name in requested:
            raise InvalidRequest(f"output {name!r} is requested more than once")
        binary = _parameters(entry, f"output {name!r}").get("binary_data", binary_output)
        requested[name] = RequestedOutput(spec, binary is True)
    return tuple(requested.values())


def _parameters(doc: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = doc.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidRequest(f"{where} parameters must be an object")
    return parameters
