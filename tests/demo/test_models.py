"""The committed models: artifacts match their cards, and the cards tell the truth."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
HOLDOUT = ROOT / "loadtest" / "data" / "holdout.jsonl"
MODEL_DIRS = ("fraud-v1", "fraud-v2", "fraud-v3", "fraud-fallback")
ROLES = {"fraud-v1": "primary", "fraud-v2": "canary", "fraud-v3": "shadow"}
ONNX_DATATYPE = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.STRING: "BYTES",
}
NUMPY_DTYPE: dict[str, Any] = {"FP32": np.float32, "INT64": np.int64, "BYTES": object}


@cache
def card(folder: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((MODELS / folder / "model-card.json").read_text())
    return doc


@cache
def holdout() -> list[dict[str, Any]]:
    return [json.loads(line) for line in HOLDOUT.read_text().splitlines()]


@cache
def session(folder: str) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(MODELS / folder / "model.onnx"), providers=["CPUExecutionProvider"]
    )


def feeds(folder: str, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Tensors assembled from holdout rows in the card's order and datatypes."""
    out = {}
    for spec in card(folder)["inputs"]:
        values = [{**row["instance"], **row["features"]}[spec["name"]] for row in rows]
        column = np.array(values, dtype=NUMPY_DTYPE[spec["datatype"]])
        out[spec["name"]] = column.reshape(-1, 1)
    return out


def fraud_scores(folder: str) -> np.ndarray:
    proba = session(folder).run(["probabilities"], feeds(folder, holdout()))[0]
    return np.asarray(proba[:, 1], dtype=np.float64)


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with tied scores given their average rank."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def test_rank_auc_handles_ties() -> None:
    assert rank_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5])) == 0.875


@pytest.mark.parametrize("folder", MODEL_DIRS)
def test_card_artifact_matches_model_file(folder: str) -> None:
    blob = (MODELS / folder / "model.onnx").read_bytes()
    artifact = card(folder)["artifact"]
    assert artifact["path"] == "model.onnx"
    assert artifact["sha256"] == hashlib.sha256(blob).hexdigest()
    assert artifact["bytes"] == len(blob) < 1_000_000


@pytest.mark.parametrize("folder", MODEL_DIRS)
def test_card_inputs_and_outputs_match_the_graph(folder: str) -> None:
    graph = onnx.load(str(MODELS / folder / "model.onnx")).graph
    declared = [(i["name"], i["datatype"]) for i in card(folder)["inputs"]]
    actual = [(i.name, ONNX_DATATYPE[i.type.tensor_type.elem_type]) for i in graph.input]
    assert declared == actual
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_value for d in dims][1:] == [1]
    outputs = [(o["name"], o["datatype"]) for o in card(folder)["outputs"]]
    assert outputs == [(o.name, ONNX_DATATYPE[o.type.tensor_type.elem_type]) for o in graph.output]


@pytest.mark.parametrize("folder", MODEL_DIRS)
def test_card_sources_match_the_role(folder: str) -> None:
    doc = card(folder)
    sources = [i["source"] for i in doc["inputs"]]
    request = ["amount", "merchant_category", "hour", "is_foreign"]
    assert [i["name"] for i in doc["inputs"] if i["source"] == "request"] == request
    if folder == "fraud-fallback":
        assert (doc["role"], doc["entity_key"], set(sources)) == ("fallback", None, {"request"})
        return
    assert (doc["role"], doc["entity_key"]) == (ROLES[folder], "customer_id")
    assert sources == ["feature"] * 4 + ["request"] * 4
    for spec in doc["inputs"][:4]:
        assert spec["feature_ref"] == f"customer_stats:{spec['name']}"


@pytest.mark.parametrize("folder", MODEL_DIRS)
def test_model_scores_holdout_rows_as_probabilities(folder: str) -> None:
    label, proba = session(folder).run(None, feeds(folder, holdout()[:64]))
    assert proba.shape == (64, 2) and label.shape == (64,)
    assert ((proba >= 0.0) & (proba <= 1.0)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(label, (proba[:, 1] >= 0.5).astype(np.int64))


def test_primary_auc_matches_its_card_and_beats_the_fallback() -> None:
    labels = np.array([row["label"] for row in holdout()])
    assert len(labels) == card("fraud-v1")["metrics"]["n_holdout"]
    primary = rank_auc(labels, fraud_scores("fraud-v1"))
    fallback = rank_auc(labels, fraud_scores("fraud-fallback"))
    assert primary == pytest.approx(card("fraud-v1")["metrics"]["auc_holdout"], abs=1e-6)
    assert fallback == pytest.approx(card("fraud-fallback")["metrics"]["auc_holdout"], abs=1e-6)
    assert primary > fallback + 0.05


def test_holdout_features_are_the_feature_store_values() -> None:
    pd = pytest.importorskip("pandas")
    from gateway.demo.data import CUSTOMER_FEATURES, customer_stats

    stats = customer_stats().set_index("customer_id")
    rows = holdout()[:500]
    got = pd.DataFrame([row["features"] for row in rows], columns=list(CUSTOMER_FEATURES))
    want = stats.loc[[row["instance"]["customer_id"] for row in rows], list(CUSTOMER_FEATURES)]
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
