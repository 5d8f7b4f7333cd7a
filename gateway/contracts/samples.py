"""Example requests built from a model card (for the demo's printout and the benchmarks)."""

from __future__ import annotations

from typing import Any

from gateway.contracts.card import CardInput, ModelCard


def typical_value(spec: CardInput) -> Any:
    """The card's default for ``spec`` (its training median or mode), in the field's JSON type."""
    value = spec.default
    if spec.kind == "category":
        return str(value if value is not None else (spec.categories or ("",))[0])
    if spec.kind == "bool":
        return bool(value)
    if spec.kind == "int":
        return int(value or 0)
    return float(value or 0.0)


def sample_infer_request(card: ModelCard, request_id: str | None = None) -> dict[str, Any]:
    """A one-row OIP v2 infer request of typical values."""
    inputs = []
    for spec in card.inputs:
        value = typical_value(spec)
        if spec.datatype.startswith("FP"):
            value = float(value)
        elif spec.datatype != "BYTES" and spec.datatype != "BOOL":
            value = int(value)
        inputs.append(
            {"name": spec.name, "datatype": spec.datatype, "shape": [1, 1], "data": [value]}
        )
    doc: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        doc["id"] = request_id
    return doc
