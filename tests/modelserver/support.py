"""Helpers shared by the model server tests: the test client and request builders."""

from __future__ import annotations

import warnings
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette 1.x warns once, on import, that its TestClient prefers httpx2 to httpx;
    # pytest runs with -W error, so the import would fail without this.
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient", "scoring_request"]


def scoring_request(
    x: list[float] | None = None,
    y: list[float] | None = None,
    cat: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An infer request for the scoring model with flat data, one row by default."""
    x = [0.1] if x is None else x
    y = [0.2] if y is None else y
    cat = ["online"] if cat is None else cat
    return {
        "inputs": [
            {"name": "x", "shape": [len(x), 1], "datatype": "FP32", "data": x},
            {"name": "y", "shape": [len(y), 1], "datatype": "FP32", "data": y},
            {"name": "cat", "shape": [len(cat), 1], "datatype": "BYTES", "data": cat},
        ],
        **extra,
    }
