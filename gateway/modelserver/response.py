"""Encode an OIP inference response, as JSON tensors or with binary tensor data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from gateway.modelserver.binary import encode_tensor
from gateway.modelserver.request import RequestedOutput

# orjson writes numeric numpy arrays natively (float32 without float64 noise); a NaN
# becomes null because JSON has no NaN. Binary outputs keep the real NaN bits.
_DUMPS_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """The response body; ``json_length`` is set when binary tensors follow the JSON."""

    body: bytes
    json_length: int | None


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Sequence[tuple[RequestedOutput, np.ndarray[Any, Any]]],
) -> EncodedResponse:
    """Build ``{"model_name", "model_version"?, "id"?, "outputs": [...]}`` with flat data."""
    doc: dict[str, object] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    tensors: list[dict[str, object]] = []
    blobs: list[bytes] = []
    for requested, array in outputs:
        datatype = requested.spec.datatype
        tensor: dict[str, object] = {
            "name": requested.spec.name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if requested.binary:
            blob = encode_tensor(datatype, array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif datatype == "BYTES":
            tensor["data"] = array.ravel().tolist()
        else:
            tensor["data"] = np.ascontiguousarray(array).ravel()
        tensors.append(tensor)
    doc["outputs"] = tensors
    header = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    if not blobs:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join([header, *blobs]), len(header))
