"""Valid fraud-v1 requests (v1 and v2) that the contract tests break one rule at a time."""

from __future__ import annotations

import json
from typing import Any

import orjson
from support import MODELS

CARD = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
ROW = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
       "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
       "hour": 14, "is_foreign": False}  # fmt: skip
V2 = "/v2/models/fraud/infer"
V1 = "/v1/models/fraud:predict"
INDEX = {spec["name"]: i for i, spec in enumerate(CARD["inputs"])}


def v2_doc(rows: int = 2) -> dict[str, Any]:
    """An OIP infer request of ``rows`` copies of ``ROW``, in the card's input order."""
    inputs = []
    for spec in CARD["inputs"]:
        value = ROW[spec["name"]]
        value = float(value) if spec["datatype"].startswith("FP") else value
        inputs.append({"name": spec["name"], "datatype": spec["datatype"],
                       "shape": [rows, 1], "data": [value] * rows})  # fmt: skip
    return {"id": "t-1", "inputs": inputs}


REQUEST_FIELDS = {spec["name"]: ROW[spec["name"]] for spec in CARD["inputs"]
                  if spec["source"] == "request"}  # fmt: skip


def v2_entity_doc(customers: list[str], **fields: Any) -> dict[str, Any]:
    """An OIP request with only the request-time tensors (``ROW``'s, ``fields`` changed),
    naming one entity per row in ``parameters``: the feature store supplies the rest."""
    values = REQUEST_FIELDS | fields
    rows = len(customers)
    inputs = []
    for spec in CARD["inputs"]:
        if spec["source"] == "request":
            value = values[spec["name"]]
            value = float(value) if spec["datatype"].startswith("FP") else value
            inputs.append({"name": spec["name"], "datatype": spec["datatype"],
                           "shape": [rows, 1], "data": [value] * rows})  # fmt: skip
    return {"parameters": {"customer_id": ",".join(customers)}, "inputs": inputs}


def v1_entity_doc(customers: list[str], **fields: Any) -> dict[str, Any]:
    """A v1 request of the request-time fields (``ROW``'s, ``fields`` changed), one instance
    per customer."""
    return {"instances": [{"customer_id": c, **REQUEST_FIELDS, **fields} for c in customers]}


def v1(*changes: dict[str, Any], rows: int = 2, drop: str | None = None) -> bytes:
    """A v1 body of ``rows`` instances; ``changes[i]`` updates row i, ``drop`` a field of the last."""
    instances = [dict(ROW, customer_id=f"c-000{i}") for i in range(rows)]
    for row, change in enumerate(changes):
        instances[row].update(change)
    if drop:
        del instances[-1][drop]
    return orjson.dumps({"instances": instances})
