"""Triton's binary tensor data extension: raw tensor bytes after the JSON header.

Layout (``binary_tensor_data`` in Triton's protocol docs): the body is the JSON object,
whose length is the ``Inference-Header-Content-Length`` header, followed by each binary
tensor in the order the JSON lists them. Elements are little-endian and row-major with
no padding; BOOL is one byte 0/1; a BYTES element is a 4-byte little-endian length and
then its bytes. Example: BYTES ``["ab", "c"]`` is ``02000000 6162 01000000 63``.
"""

from __future__ import annotations

import struct
from math import prod
from typing import Any, Final

import numpy as np

from gateway.modelserver.datatypes import OIP_TO_NUMPY, OIP_TO_WIRE
from gateway.modelserver.errors import InvalidRequest

_LENGTH: Final = struct.Struct("<I")


def decode_tensor(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes
) -> np.ndarray[Any, Any]:
    """Turn one input's raw bytes into the array onnxruntime takes, shaped ``shape``."""
    count = prod(shape)
    if datatype == "BYTES":
        items = _split_bytes(name, raw)
        if len(items) != count:
            raise InvalidRequest(
                f"input {name!r} has {len(items)} elements but shape {list(shape)} holds {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    wire = OIP_TO_WIRE[datatype]
    if len(raw) != count * wire.itemsize:
        raise InvalidRequest(
            f"input {name!r} has {len(raw)} bytes of binary data but shape {list(shape)} "
            f"of {datatype} needs {count * wire.itemsize}"
        )
    if datatype == "BOOL":
        # Any non-zero byte is true; numpy would otherwise keep the raw byte value.
        flags: np.ndarray[Any, Any] = np.frombuffer(raw, dtype=np.uint8) != 0
        return flags.reshape(shape)
    return np.frombuffer(raw, dtype=wire).astype(OIP_TO_NUMPY[datatype], copy=False).reshape(shape)


def encode_tensor(datatype: str, array: np.ndarray[Any, Any]) -> bytes:
    """Serialise one output as raw bytes in the extension's layout."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.ravel().tolist():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=OIP_TO_WIRE[datatype]).tobytes()


def _split_bytes(name: str, raw: bytes) -> list[str]:
    items: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise InvalidRequest(f"input {name!r} has a truncated BYTES length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidRequest(f"input {name!r} has a BYTES element running past its data")
        try:
            # onnxruntime's string tensors hold text, so elements must be UTF-8.
            items.append(raw[offset : offset + length].decode())
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"input {name!r} has a BYTES element that is not UTF-8") from exc
        offset += length
    return items
