"""Train the demo's fraud models from seeded synthetic data and export them to ONNX.

Writes ``models/fraud-{v1,v2,v3,fallback}/`` (``model.onnx`` + ``model-card.json``, see
docs/model-card.md) and the labelled held-out set ``loadtest/data/holdout.jsonl``.
Deterministic: running it twice yields byte-identical files.

    pip install -e '.[train]'
    python models/train.py            # or: python models/train.py --root /tmp/out

scikit-learn and skl2onnx are imported where they are used, so this module (its card
helpers, e.g. :func:`distribution`) imports without the ``train`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from gateway.demo.data import CUSTOMER_FEATURES, REQUEST_FIELDS, transactions

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
HOLDOUT_SEED, N_HOLDOUT = 303, 5_000
# An upper bound (skl2onnx emits the lowest opsets the graph needs), so a newer skl2onnx
# cannot raise them past what older onnxruntime builds load.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

# name -> (kind, OIP datatype); ints travel as INT64, the bool as FP32 0/1.
FIELD_TYPES: dict[str, tuple[str, str]] = {
    "avg_amount_30d": ("float", "FP32"),
    "txn_count_7d": ("int", "INT64"),
    "chargeback_rate_90d": ("float", "FP32"),
    "account_age_days": ("int", "INT64"),
    "amount": ("float", "FP32"),
    "merchant_category": ("category", "BYTES"),
    "hour": ("int", "INT64"),
    "is_foreign": ("bool", "FP32"),
}
NUMPY_DTYPE = {"FP32": np.float32, "INT64": np.int64, "BYTES": object}
# Hard bounds of every numeric input from what the field means (not from the data): a
# value outside is invalid. None is an open side. Every float/int input needs an entry.
DOMAINS: dict[str, tuple[float | None, float | None]] = {
    "avg_amount_30d": (0, None),  # a mean of amounts
    "txn_count_7d": (0, None),  # a count
    "chargeback_rate_90d": (0, 1),  # a share of transactions
    "account_age_days": (0, None),  # an age
    "amount": (0, None),  # a payment
    "hour": (0, 23),  # hour of the day
}
# Distributions bin values at their training deciles (docs/model-card.md).
DECILES = np.arange(10, 100, 10)
OUTPUTS = [
    {
        "name": "label",
        "datatype": "INT64",
        "shape": [-1],
        "meaning": "predicted class: 1 fraud, 0 legit (P(fraud) >= 0.5)",
    },
    {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [-1, 2],
        "meaning": "class probabilities [P(legit), P(fraud)]; rows sum to 1",
        "probabilities": True,
        "rows_sum_to_one": True,
    },
]
SCORE = {
    "output": "probabilities",
    "index": 1,
    "threshold": 0.5,
    "labels": {"0": "legit", "1": "fraud"},
}


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: where it goes, what it sees and how it learns."""

    folder: str
    version: str
    role: str
    description: str
    fields: tuple[str, ...]
    data_seed: int
    n_train: int
    algorithm: str  # the sklearn.ensemble class
    params: dict[str, Any]


ALL_FIELDS = (*CUSTOMER_FEATURES, *REQUEST_FIELDS)
SPECS = (
    ModelSpec(
        "fraud-v1", "1", "primary",
        "Gradient-boosted trees on customer stats and request-time fields.",
        ALL_FIELDS, 101, 40_000, "GradientBoostingClassifier",
        dict(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=SEED),
    ),
    ModelSpec(
        "fraud-v2", "2", "canary",
        "v1 retrained on more and newer data with deeper, slower-learning trees.",
        ALL_FIELDS, 202, 60_000, "GradientBoostingClassifier",
        dict(n_estimators=250, max_depth=4, learning_rate=0.05, subsample=0.8, random_state=SEED),
    ),
    ModelSpec(
        "fraud-v3", "3", "shadow",
        "Random forest on the same inputs, run in shadow for comparison.",
        ALL_FIELDS, 101, 40_000, "RandomForestClassifier",
        dict(n_estimators=60, max_depth=8, min_samples_leaf=20, n_jobs=1, random_state=SEED),
    ),
    ModelSpec(
        "fraud-fallback", "fallback", "fallback",
        "Small gradient-boosted model on request-time fields only; needs no feature store.",
        REQUEST_FIELDS, 101, 40_000, "GradientBoostingClassifier",
        dict(n_estimators=80, max_depth=3, learning_rate=0.1, random_state=SEED),
    ),
)  # fmt: skip


def model_frame(df: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    """The columns a model sees, typed as its ONNX inputs are."""
    return pd.DataFrame(
        {f: df[f].to_numpy().astype(NUMPY_DTYPE[FIELD_TYPES[f][1]]) for f in fields}
    )


def onnx_feeds(df: pd.DataFrame, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One ``[n, 1]`` tensor per input, as the gateway assembles them."""
    frame = model_frame(df, fields)
    return {f: frame[f].to_numpy().reshape(-1, 1) for f in fields}


def fit_and_export(spec: ModelSpec, train: pd.DataFrame) -> tuple[Pipeline, bytes]:
    """Train ``spec`` on ``train``; return the pipeline and its serialized ONNX model."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn import ensemble
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    onnx_type = {"FP32": FloatTensorType, "INT64": Int64TensorType, "BYTES": StringTensorType}
    numeric = [f for f in spec.fields if FIELD_TYPES[f][0] != "category"]
    prep = ColumnTransformer(
        [
            ("num", "passthrough", numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant_category"]),
        ]
    )
    clf = getattr(ensemble, spec.algorithm)(**spec.params)
    pipe = Pipeline([("prep", prep), ("clf", clf)])
    pipe.fit(model_frame(train, spec.fields), train["is_fraud"].to_numpy())
    initial_types = [(f, onnx_type[FIELD_TYPES[f][1]]([None, 1])) for f in spec.fields]
    model = convert_sklearn(
        pipe,
        name=f"fraud_{spec.version}",
        initial_types=initial_types,
        target_opset=TARGET_OPSET,
        options={id(clf): {"zipmap": False}},
    )
    # skl2onnx lists the opsets in set order, which varies with the string hash seed.
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(model)
    return pipe, model.SerializeToString()


def _num(x: float) -> float:
    return round(float(x), 6)


def _sig(x: float) -> float:
    """``x`` to 6 significant digits (and never -0.0)."""
    return float(f"{float(x):.6g}") + 0.0


def distribution(values: np.ndarray) -> dict[str, list[float]]:
    """``values`` binned at their deciles: the drift baseline of one input or score.

    ``edges`` are the distinct deciles (p10..p90, linear interpolation) to 6 significant
    digits; ``shares[i]`` is the share of ``values`` in bin
    ``numpy.searchsorted(edges, v, side="right")`` of those rounded edges, to 6 decimals.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError("a distribution needs finite values")
    deciles = np.percentile(arr, DECILES, method="linear")
    # Rounding is monotone, so dropping the duplicates it leaves keeps edges increasing.
    edges = np.unique([_sig(d) for d in deciles])
    counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
    shares = [_num(c / arr.size) for c in counts]
    if abs(sum(shares) - 1.0) > 1e-3:
        raise RuntimeError(f"rounded shares sum to {sum(shares)}")
    return {"edges": [float(e) for e in edges], "shares": shares}


def domain_card(name: str, kind: str) -> dict[str, float | int | None]:
    """The domain of a numeric input from :data:`DOMAINS`, typed like its values."""
    if name not in DOMAINS:
        raise KeyError(f"numeric input {name!r} has no domain: add it to DOMAINS in train.py")
    typed = int if kind == "int" else float
    lo, hi = DOMAINS[name]
    return {"min": None if lo is None else typed(lo), "max": None if hi is None else typed(hi)}


def input_card(name: str, values: pd.Series, *, source: str) -> dict[str, Any]:
    """The card entry for one input, from the values seen in training."""
    kind, datatype = FIELD_TYPES[name]
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [-1, 1], "kind": kind}
    entry["source"] = source
    if source == "feature":
        entry["feature_ref"] = f"customer_stats:{name}"
    if kind in ("category", "bool"):
        keys = values.astype(str).str.lower()
        freq = keys.value_counts(normalize=True).sort_index()
        if kind == "category":
            entry["categories"] = sorted(freq.index)
        entry["stats"] = {"frequencies": {k: _num(v) for k, v in freq.items()}}
        mode = str(keys.mode().iloc[0])
        entry["default"] = mode == "true" if kind == "bool" else mode
        return entry
    arr = values.to_numpy(dtype=np.float64)
    domain = domain_card(name, kind)
    if (domain["min"] is not None and arr.min() < domain["min"]) or (
        domain["max"] is not None and arr.max() > domain["max"]
    ):
        raise RuntimeError(f"training values of {name!r} leave its domain {domain}")
    p01, p50, p99 = np.quantile(arr, [0.01, 0.5, 0.99])
    bound = int if kind == "int" else _num
    entry["domain"] = domain
    entry["range"] = {"min": bound(arr.min()), "max": bound(arr.max())}
    entry["stats"] = {
        "mean": _num(arr.mean()), "std": _num(arr.std()), "min": _num(arr.min()),
        "p01": _num(p01), "p50": _num(p50), "p99": _num(p99), "max": _num(arr.max()),
        "distribution": distribution(arr),
    }  # fmt: skip
    entry["default"] = round(float(p50)) if kind == "int" else _num(p50)
    return entry


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"exported model failed check: {what}")


def check_session(
    blob: bytes, fields: tuple[str, ...], holdout: pd.DataFrame, pipe: Pipeline
) -> ort.InferenceSession:
    """Load the model in onnxruntime and check it against ``pipe`` on ``holdout``."""
    # One thread: the same sums in the same order on any machine.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    _require([i.name for i in sess.get_inputs()] == list(fields), "input names or order")
    _require([o.name for o in sess.get_outputs()] == ["label", "probabilities"], "output names")
    label, proba = sess.run(None, onnx_feeds(holdout.head(3), fields))
    _require(label.shape == (3,) and label.dtype == np.int64, "label shape or dtype")
    _require(proba.shape == (3, 2) and proba.dtype == np.float32, "probabilities shape or dtype")
    _require(bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)), "probabilities sum to 1")
    expected = pipe.predict_proba(model_frame(holdout, fields))[:, 1]
    got = fraud_scores(sess, holdout, fields)
    _require(float(np.abs(got - expected).max()) < 1e-4, "ONNX agrees with scikit-learn")
    return sess


def fraud_scores(
    sess: ort.InferenceSession, df: pd.DataFrame, fields: tuple[str, ...]
) -> np.ndarray:
    """P(fraud) (the card's score) for every row of ``df``, through onnxruntime."""
    proba = sess.run(["probabilities"], onnx_feeds(df, fields))[0]
    return np.asarray(proba[:, SCORE["index"]], dtype=np.float64)


def model_card(
    spec: ModelSpec, train: pd.DataFrame, blob: bytes, auc: float, train_scores: np.ndarray
) -> dict[str, Any]:
    """The model's contract, per docs/model-card.md; ``train_scores``: its score on ``train``."""
    has_features = spec.fields != REQUEST_FIELDS
    inputs = [
        input_card(f, train[f], source="feature" if f in CUSTOMER_FEATURES else "request")
        for f in spec.fields
    ]
    return {
        "schema_version": 1,
        "name": "fraud",
        "version": spec.version,
        "role": spec.role,
        "description": spec.description,
        "platform": "onnx_onnxv1",
        "artifact": {
            "path": "model.onnx",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
        },
        "entity_key": "customer_id" if has_features else None,
        "inputs": inputs,
        "outputs": OUTPUTS,
        "score": {**SCORE, "distribution": distribution(train_scores)},
        "metrics": {"auc_holdout": auc, "n_train": len(train), "n_holdout": N_HOLDOUT},
        "training": {
            "script": "models/train.py",
            "seed": SEED,
            "algorithm": spec.algorithm,
            "data": f"gateway.demo.data.transactions(n={spec.n_train}, seed={spec.data_seed})",
        },
    }


def to_json(value: Any, indent: str = "") -> str:
    """Indented JSON that keeps short scalar-only lists and objects on one line."""
    flat = json.dumps(value)
    nested = isinstance(value, dict | list) and any(
        isinstance(v, dict | list) for v in (value.values() if isinstance(value, dict) else value)
    )
    if not isinstance(value, dict | list) or (not nested and len(indent) + len(flat) <= 88):
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + f"\n{indent}]"


def holdout_lines(holdout: pd.DataFrame) -> str:
    """The held-out set as JSON lines: v1 instance, the customer's features, the label."""
    lines = []
    for row in holdout.itertuples(index=False):
        record = {
            "instance": {
                "customer_id": row.customer_id,
                "amount": float(row.amount),
                "merchant_category": row.merchant_category,
                "hour": int(row.hour),
                "is_foreign": bool(row.is_foreign),
            },
            "features": {
                "avg_amount_30d": float(row.avg_amount_30d),
                "txn_count_7d": int(row.txn_count_7d),
                "chargeback_rate_90d": float(row.chargeback_rate_90d),
                "account_age_days": int(row.account_age_days),
            },
            "label": int(row.is_fraud),
        }
        lines.append(json.dumps(record, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="where models/ and loadtest/ go")
    root: Path = parser.parse_args(argv).root
    holdout = transactions(N_HOLDOUT, HOLDOUT_SEED)
    data_dir = root / "loadtest" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "holdout.jsonl").write_text(holdout_lines(holdout), encoding="utf-8")
    print(f"holdout: {N_HOLDOUT} rows, fraud rate {holdout['is_fraud'].mean():.3f}")
    for spec in SPECS:
        train = transactions(spec.n_train, spec.data_seed)
        pipe, blob = fit_and_export(spec, train)
        sess = check_session(blob, spec.fields, holdout, pipe)
        scores = fraud_scores(sess, holdout, spec.fields)
        auc = float(roc_auc_score(holdout["is_fraud"].to_numpy(), scores))
        card = model_card(spec, train, blob, auc, fraud_scores(sess, train, spec.fields))
        out = root / "models" / spec.folder
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.onnx").write_bytes(blob)
        (out / "model-card.json").write_text(to_json(card) + "\n", encoding="utf-8")
        print(f"{spec.folder}: {spec.algorithm}, {len(blob)} bytes, AUC {auc:.4f}")


if __name__ == "__main__":
    main()
