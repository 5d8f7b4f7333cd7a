"""Request bodies drawn from the labelled held-out set the training script writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import orjson

from gateway.contracts.card import ModelCard

HOLDOUT = Path(__file__).resolve().parent / "data" / "holdout.jsonl"
Api = Literal["v1", "v2"]


class Row(TypedDict):
    instance: dict[str, Any]
    features: dict[str, Any]
    label: int


@dataclass(frozen=True, slots=True)
class Payload:
    """One request: its path, body bytes and the ground-truth label of its row."""

    path: str
    body: bytes
    label: int


def load_rows(path: Path = HOLDOUT, limit: int | None = None) -> list[Row]:
    rows: list[Row] = []
    with path.open() as handle:
        for line in handle:
            rows.append(cast(Row, json.loads(line)))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def v1_payloads(
    rows: list[Row], model: str = "fraud", with_features: bool = False
) -> list[Payload]:
    """Named-field bodies: the request-time fields and ``customer_id`` (the gateway looks
    up the rest), or every field with ``with_features`` for a gateway without a store."""
    out = []
    for row in rows:
        instance = dict(row["instance"])
        if with_features:
            instance.update(row["features"])
        out.append(
            Payload(
                f"/v1/models/{model}:predict",
                orjson.dumps({"instances": [instance]}),
                int(row["label"]),
            )
        )
    return out


def v2_payloads(rows: list[Row], card: ModelCard, model: str = "fraud") -> list[Payload]:
    """OIP bodies with every input of ``card`` as a [1, 1] tensor."""
    out = []
    for row in rows:
        values = {**row["instance"], **row["features"]}
        inputs = []
        for spec in card.inputs:
            value = values[spec.name]
            if spec.datatype.startswith("FP"):
                value = float(value)
            inputs.append(
                {"name": spec.name, "datatype": spec.datatype, "shape": [1, 1], "data": [value]}
            )
        out.append(
            Payload(
                f"/v2/models/{model}/infer", orjson.dumps({"inputs": inputs}), int(row["label"])
            )
        )
    return out
