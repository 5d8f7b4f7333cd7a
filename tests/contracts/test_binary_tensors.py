"""OIP checks on binary tensors: flat numpy arrays, checked without Python lists."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support import MODELS

from gateway.contracts.card import ModelCard
from gateway.contracts.oip import InferChecker
from gateway.contracts.problems import ContractViolation
from gateway.settings.schema import ContractSettings

CARD = ModelCard.model_validate(json.loads((MODELS / "fraud-v1" / "model-card.json").read_text()))
CHECKER = InferChecker.compile(CARD, max_batch=64)
VALUES: dict[str, tuple[str, list[Any]]] = {
    "avg_amount_30d": ("FP32", [85.0, 12.5]),
    "txn_count_7d": ("INT64", [6, 0]),
    "chargeback_rate_90d": ("FP32", [0.01, 0.5]),
    "account_age_days": ("INT64", [900, 3]),
    "amount": ("FP32", [120.5, 0.0]),
    "merchant_category": ("BYTES", ["grocery", "travel"]),
    "hour": ("INT64", [14, 23]),
    "is_foreign": ("FP32", [0.0, 1.0]),
}


def binary_request(**replace: np.ndarray[Any, Any]) -> dict[str, Any]:
    """A request as :func:`gateway.wire.binary.attach_binary_data` leaves it."""
    inputs = []
    for name, (datatype, values) in VALUES.items():
        data: Any = values if datatype == "BYTES" else np.array(values, dtype=_DTYPES[datatype])
        inputs.append({"name": name, "datatype": datatype, "shape": [2, 1],
                       "data": replace.get(name, data)})  # fmt: skip
    return {"inputs": inputs}


_DTYPES = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32}


def test_a_valid_binary_request_passes() -> None:
    assert CHECKER.check(binary_request()) == 2


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("hour", np.array([14, 24]), "'hour' row 1: 24 is outside the allowed range [0, 23] (rule: range)"),
        ("amount", np.array([1.0, -5.0], np.float32), "'amount' row 1: -5.0 is outside"),
        ("amount", np.array([np.nan, 1.0], np.float32), "'amount' row 0: nan is not allowed"),
        ("amount", np.array([np.inf, 1.0], np.float32), "'amount' row 0: inf is not allowed"),
        ("is_foreign", np.array([0.5, 1.0], np.float32), "'is_foreign' row 0: 0.5 is not a boolean"),
        ("hour", np.array([1, 2, 3]), "holds 3 elements, shape [2, 1] needs 2 (rule: element_count)"),
    ],
)  # fmt: skip
def test_binary_values_break_the_same_rules_as_json(
    name: str, data: np.ndarray[Any, Any], message: str
) -> None:
    with pytest.raises(ContractViolation) as caught:
        CHECKER.check(binary_request(**{name: data}))
    assert message in caught.value.message


def test_a_safe_conversion_converts_the_array_too() -> None:
    checker = InferChecker.compile(
        CARD, max_batch=64, contract=ContractSettings(datatype_conversion="safe")
    )
    doc = binary_request(hour=np.array([3, 4], dtype=np.int32))
    doc["inputs"][6]["datatype"] = "INT32"
    assert checker.check_converting(doc) == (2, True)
    tensor = doc["inputs"][6]
    assert tensor["datatype"] == "INT64"
    assert tensor["data"].dtype == np.int64
