"""Request bodies drawn from the labelled held-out set the training script writes."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import orjson

from gateway.contracts.card import ModelCard

HOLDOUT = Path(__file__).resolve().parent / "data" / "holdout.jsonl"
Api = Literal["v1", "v2"]
MIXED_SEED = 1  # which requests of a mixed load are v2: fixed, so runs compare


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


def zipf_draws(keys: Sequence[str], s: float = 1.1, seed: int = 0) -> Iterator[int]:
    """Endless indices into ``keys`` drawn with a long tail: the distinct keys (customers)
    are ranked in an order ``seed`` shuffles, rank ``k`` is drawn with probability
    proportional to ``1 / k**s``, then one of that key's indices uniformly. The same
    ``keys``, ``s`` and ``seed`` give the same sequence."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    if not groups:
        raise ValueError("zipf_draws needs at least one key")
    rng = random.Random(seed)
    ranked = list(groups.values())
    rng.shuffle(ranked)  # who is popular is the seed's choice, not the file's order
    cumulative = list(itertools.accumulate(k**-s for k in range(1, len(ranked) + 1)))
    while True:
        indices = rng.choices(ranked, cum_weights=cumulative)[0]
        yield indices[rng.randrange(len(indices))]


def zipf_payloads(
    rows: Sequence[Row],
    payloads: Sequence[Payload],
    s: float = 1.1,
    seed: int = 0,
    key: str = "customer_id",
) -> Iterator[Payload]:
    """Endless requests from ``payloads`` (``payloads[i]`` is ``rows[i]``'s body) with the
    customers (``instance[key]``) ranked by a Zipf law: a few frequent customers and a long
    tail of rare ones, as ``zipf_draws``. One iterator is one continuing sequence."""
    if len(rows) != len(payloads):
        raise ValueError(f"{len(rows)} rows but {len(payloads)} payloads")
    for index in zipf_draws([str(row["instance"][key]) for row in rows], s, seed):
        yield payloads[index]


def mixed_payloads(
    v1: Sequence[Payload], v2: Sequence[Payload], indices: Iterator[int], v2_share: float
) -> Iterator[Payload]:
    """Endless requests for the rows ``indices`` draws: each the row's v2 body with
    probability ``v2_share`` (a seeded, repeatable choice), else its v1 body."""
    if len(v1) != len(v2):
        raise ValueError(f"{len(v1)} v1 payloads but {len(v2)} v2 payloads")
    rng = random.Random(MIXED_SEED)
    for index in indices:
        yield v2[index] if rng.random() < v2_share else v1[index]


def v2_batch_payload(
    rows: list[Row], card: ModelCard, *, binary: bool, model: str = "fraud"
) -> tuple[Payload, dict[str, str]]:
    """One OIP body with every row of ``rows`` as a ``[len(rows), 1]`` tensor per input,
    and the headers it needs: JSON tensors, or (``binary``) Triton's binary tensor data
    for every input, asking for binary outputs, as tritonclient does by default."""
    import numpy as np

    from gateway.wire.binary import HEADER_LENGTH, OIP_TO_NUMPY, encode_tensor

    count = len(rows)
    inputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for spec in card.inputs:
        values = [{**row["instance"], **row["features"]}[spec.name] for row in rows]
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype,
                                  "shape": [count, 1]}  # fmt: skip
        if not binary:
            tensor["data"] = (
                [float(v) for v in values] if spec.datatype.startswith("FP") else values
            )
        else:
            array = np.array(values, dtype=OIP_TO_NUMPY[spec.datatype])
            blob = encode_tensor(spec.datatype, array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        inputs.append(tensor)
    doc: dict[str, Any] = {"inputs": inputs}
    if binary:
        doc["parameters"] = {"binary_data_output": True}
    header = orjson.dumps(doc)
    headers = {"content-type": "application/octet-stream" if binary else "application/json"}
    if binary:
        headers[HEADER_LENGTH] = str(len(header))
    label = int(rows[0]["label"])
    return Payload(f"/v2/models/{model}/infer", b"".join([header, *blobs]), label), headers
