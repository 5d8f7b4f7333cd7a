"""Triton's binary tensor data extension, as the model server reads and writes it.

The codec is :mod:`gateway.wire.binary`, shared with the gateway; here its errors become
the server's 400 (:class:`~gateway.modelserver.errors.InvalidRequest`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.modelserver.errors import InvalidRequest
from gateway.wire import binary as wire
from gateway.wire.binary import encode_tensor

__all__ = ["decode_tensor", "encode_tensor"]


def decode_tensor(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview
) -> np.ndarray[Any, Any]:
    """Turn one input's raw bytes into the array onnxruntime takes, shaped ``shape``."""
    try:
        return wire.decode_tensor(name, datatype, shape, raw)
    except wire.BinaryDataError as exc:
        raise InvalidRequest(str(exc)) from exc
