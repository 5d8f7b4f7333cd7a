"""Triton's binary tensor data extension: raw tensor bytes after the JSON header.

Layout (``binary_tensor_data`` in Triton's protocol docs): the body is the JSON object,
whose length is the ``Inference-Header-Content-Length`` header, followed by each binary
tensor in the order the JSON lists them; a tensor sent this way has
``parameters.binary_data_size`` instead of ``data``. Elements are little-endian and
row-major with no padding; BOOL is one byte 0/1; a BYTES element is a 4-byte
little-endian length and then its bytes. Example: BYTES ``["ab", "c"]`` is
``02000000 6162 01000000 63``.

A client asks for binary outputs with ``parameters.binary_data_output: true`` (all of
them) or per requested output with ``parameters.binary_data`` (which wins).

Shared by the gateway (both of its sides) and ``gateway model-server``; errors are
:class:`BinaryDataError` (a ``ValueError``), which each side maps to its own 400.
Fixed-size tensors decode to read-only numpy views of the body (``np.frombuffer``),
never to Python lists.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, Final

import numpy as np
import orjson

#: The header naming the JSON part's length (lower case, as ASGI and aiohttp give it).
HEADER_LENGTH: Final = "inference-header-content-length"

#: OIP datatype -> the numpy dtype of its elements. BYTES is an object array of ``str``,
#: which is what onnxruntime takes for ``tensor(string)``.
OIP_TO_NUMPY: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

#: The wire dtype of each fixed-size datatype (little-endian, native element size;
#: BOOL is one byte 0/1).
OIP_TO_WIRE: Final[dict[str, np.dtype[np.generic]]] = {
    name: dtype.newbyteorder("<") for name, dtype in OIP_TO_NUMPY.items() if name != "BYTES"
}

_LENGTH: Final = struct.Struct("<I")
_DUMPS: Final = orjson.OPT_SERIALIZE_NUMPY

Flat = np.ndarray[Any, Any] | list[str]


class BinaryDataError(ValueError):
    """A body that does not follow the extension; the message names the tensor."""


def header_length(value: str | bytes) -> int:
    """The ``Inference-Header-Content-Length`` value, a non-negative integer."""
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise BinaryDataError("Inference-Header-Content-Length must be a non-negative integer")
    return length


def split_body(body: bytes, length: int | None) -> tuple[bytes, memoryview]:
    """The JSON part and the binary part of ``body`` (all JSON when ``length`` is None)."""
    if length is None:
        return body, memoryview(b"")
    if length > len(body):
        raise BinaryDataError(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes"
        )
    view = memoryview(body)
    return body[:length], view[length:]


def decode_flat(name: str, datatype: str, raw: bytes | memoryview) -> Flat:
    """One tensor's elements, flat: a numpy view for fixed-size types, ``str``s for BYTES."""
    if datatype == "BYTES":
        return split_bytes(name, raw)
    wire = OIP_TO_WIRE.get(datatype)
    if wire is None:
        raise BinaryDataError(f"{name} has datatype {datatype!r}, not an OIP datatype")
    if len(raw) % wire.itemsize:
        raise BinaryDataError(
            f"{name} has {len(raw)} bytes of binary data, not a whole number of "
            f"{datatype} elements ({wire.itemsize} bytes each)"
        )
    if datatype == "BOOL":
        # Any non-zero byte is true; numpy would otherwise keep the raw byte value.
        flags: np.ndarray[Any, Any] = np.frombuffer(raw, dtype=np.uint8) != 0
        return flags
    return np.frombuffer(raw, dtype=wire).astype(OIP_TO_NUMPY[datatype], copy=False)


def decode_tensor(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview
) -> np.ndarray[Any, Any]:
    """One tensor's raw bytes as an array shaped ``shape`` (BYTES: an object array)."""
    count = prod(shape)
    if datatype != "BYTES":
        wire = OIP_TO_WIRE.get(datatype)
        if wire is not None and len(raw) != count * wire.itemsize:
            raise BinaryDataError(
                f"input {name!r} has {len(raw)} bytes of binary data but shape {list(shape)} "
                f"of {datatype} needs {count * wire.itemsize}"
            )
    flat = decode_flat(f"input {name!r}", datatype, raw)
    if isinstance(flat, list):
        if len(flat) != count:
            raise BinaryDataError(
                f"input {name!r} has {len(flat)} elements but shape {list(shape)} holds {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return flat.reshape(shape)


def encode_tensor(datatype: str, data: Any) -> bytes:
    """Serialise one tensor's elements (an array or nested lists) in the extension's layout."""
    if datatype == "BYTES":
        items = data.ravel().tolist() if isinstance(data, np.ndarray) else _flatten(data)
        parts: list[bytes] = []
        for item in items:
            encoded = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.ascontiguousarray(data, dtype=OIP_TO_WIRE[datatype]).tobytes()


def split_bytes(name: str, raw: bytes | memoryview) -> list[str]:
    """The UTF-8 elements of a BYTES tensor, each after its 4-byte length."""
    data = bytes(raw)
    items: list[str] = []
    append, unpack = items.append, _LENGTH.unpack_from  # bound once: this runs per element
    offset, end = 0, len(data)
    try:
        while offset < end:
            (length,) = unpack(data, offset)
            offset += 4 + length
            if offset > end:
                raise BinaryDataError(f"{name} has a BYTES element running past its data")
            # Models read text (onnxruntime's string tensors), so elements must be UTF-8.
            append(data[offset - length : offset].decode())
    except struct.error as exc:
        raise BinaryDataError(f"{name} has a truncated BYTES length prefix") from exc
    except UnicodeDecodeError as exc:
        raise BinaryDataError(f"{name} has a BYTES element that is not UTF-8") from exc
    return items


def attach_binary_data(tensors: Any, binary: memoryview, where: str) -> bool:
    """Give every tensor of ``tensors`` sent as binary its decoded ``data``, in place.

    ``binary_data_size`` is removed from its ``parameters`` (and ``parameters`` when that
    leaves it empty), so the document reads like a JSON request whose ``data`` is a flat
    numpy array (a list of ``str`` for BYTES). Shapes and element counts are left to the
    caller's checks. Returns whether any tensor was binary; raises
    :class:`BinaryDataError` when the sizes do not add up to the binary part.

    >>> doc = [{"name": "x", "datatype": "INT32", "shape": [2],
    ...         "parameters": {"binary_data_size": 8}}]
    >>> attach_binary_data(doc, memoryview(bytes([1, 0, 0, 0, 2, 0, 0, 0])), "inputs")
    True
    >>> doc[0]["data"].tolist(), "parameters" in doc[0]
    ([1, 2], False)
    """
    offset = 0
    found = False
    for index, tensor in enumerate(tensors if isinstance(tensors, list) else ()):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        name = f"{where}[{index}] {str(tensor.get('name'))[:64]!r}"
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise BinaryDataError(f"{name} binary_data_size must be a non-negative integer")
        if "data" in tensor:
            raise BinaryDataError(f"{name} has both data and binary_data_size")
        if offset + size > len(binary):
            raise BinaryDataError(f"{name} binary data runs past the end of the body")
        datatype = tensor.get("datatype")
        tensor["data"] = decode_flat(name, str(datatype), binary[offset : offset + size])
        offset += size
        found = True
        del parameters["binary_data_size"]
        if not parameters:
            del tensor["parameters"]
    if offset != len(binary):
        raise BinaryDataError(
            f"the body has {len(binary)} bytes of binary tensor data "
            f"but the {where}' binary_data_size add up to {offset}"
        )
    return found


@dataclass(frozen=True, slots=True)
class OutputForms:
    """Which outputs a client wants as binary data: ``every`` unless ``named`` says.

    >>> OutputForms(True, {"label": False}).binary("label"), OutputForms(True, {}).binary("p")
    (False, True)
    """

    every: bool
    named: dict[str, bool]

    def binary(self, name: str) -> bool:
        return self.named.get(name, self.every)

    @property
    def any(self) -> bool:
        return self.every or any(self.named.values())


def take_output_forms(doc: dict[str, Any]) -> OutputForms | None:
    """Remove the client's binary-output choices from ``doc`` (a checked request), in place.

    Returns them, or ``None`` when the client asked for none (every answer JSON). What is
    left is the request an upstream gets; the gateway answers the client in its form.
    """
    every = False
    named: dict[str, bool] = {}
    parameters = doc.get("parameters")
    if isinstance(parameters, dict) and "binary_data_output" in parameters:
        every = parameters.pop("binary_data_output") is True
        if not parameters:
            del doc["parameters"]
    for output in doc.get("outputs") or ():
        params = output.get("parameters") if isinstance(output, dict) else None
        if isinstance(params, dict) and "binary_data" in params:
            named[output["name"]] = params.pop("binary_data") is True
            if not params:
                del output["parameters"]
    if not every and not named:
        return None
    return OutputForms(every, named)


def encode_answer(doc: dict[str, Any], forms: OutputForms) -> tuple[bytes, int | None]:
    """``doc`` (an OIP answer) as a body with the outputs ``forms`` wants as binary data.

    Returns the body and the JSON part's length (``None``: no output went binary, the
    body is plain JSON). ``doc`` is changed in place.
    """
    blobs: list[bytes] = []
    for tensor in doc.get("outputs") or ():
        if not isinstance(tensor, dict) or not forms.binary(str(tensor.get("name"))):
            continue
        if "data" not in tensor:
            continue
        blob = encode_tensor(str(tensor.get("datatype")), tensor.pop("data"))
        parameters = tensor.get("parameters")
        tensor["parameters"] = {
            **(parameters if isinstance(parameters, dict) else {}),
            "binary_data_size": len(blob),
        }
        blobs.append(blob)
    header = orjson.dumps(doc, option=_DUMPS)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def decode_answer(body: bytes, length: int) -> dict[str, Any]:
    """An OIP answer with binary outputs as a document whose binary outputs' ``data`` are
    flat numpy arrays (``str`` lists for BYTES): ``orjson.dumps(doc,
    option=orjson.OPT_SERIALIZE_NUMPY)`` makes it the JSON answer it stands for, FP32 values
    written as short as a JSON answer's."""
    header, binary = split_body(body, length)
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BinaryDataError(f"the answer's JSON part is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BinaryDataError("the answer's JSON part is not an object")
    attach_binary_data(doc.get("outputs"), binary, "outputs")
    return doc


def _flatten(data: Any) -> Sequence[Any]:
    while isinstance(data, list) and data and isinstance(data[0], list):
        data = [x for row in data for x in row]
    return data if isinstance(data, list) else [data]
