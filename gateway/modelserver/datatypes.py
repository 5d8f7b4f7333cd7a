"""Open Inference Protocol datatypes and their onnxruntime and numpy counterparts.

The numpy and wire dtypes (``OIP_TO_NUMPY``, ``OIP_TO_WIRE``) are :mod:`gateway.wire.binary`'s.

Every table here is built once at import; the request path only looks things up.
"""

from __future__ import annotations

from typing import Any, Final, cast

import numpy as np

from gateway.wire.binary import OIP_TO_NUMPY, OIP_TO_WIRE

__all__ = ["ACCEPTED_JSON_KINDS", "INTEGER_LIMITS", "OIP_TO_NUMPY", "OIP_TO_WIRE", "ORT_TO_OIP"]

#: onnxruntime's type string of a tensor -> OIP datatype.
ORT_TO_OIP: Final[dict[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

#: numpy kinds of a JSON-decoded array that may be cast to each datatype family
#: without losing meaning: ints widen to floats, but floats never truncate to ints
#: and nothing turns into a bool or a string.
ACCEPTED_JSON_KINDS: Final[dict[str, frozenset[str]]] = {
    "BOOL": frozenset("b"),
    **{name: frozenset("iu") for name in OIP_TO_NUMPY if name.startswith(("INT", "UINT"))},
    **{name: frozenset("iuf") for name in ("FP16", "FP32", "FP64")},
    "BYTES": frozenset("U"),
}

#: Bounds of each integer datatype: JSON integers are checked against them before the
#: cast, which would otherwise wrap silently (300 as UINT8 becoming 44).
INTEGER_LIMITS: Final[dict[str, tuple[int, int]]] = {
    name: (int(np.iinfo(cast(Any, dtype)).min), int(np.iinfo(cast(Any, dtype)).max))
    for name, dtype in OIP_TO_NUMPY.items()
    if dtype.kind in "iu"
}
