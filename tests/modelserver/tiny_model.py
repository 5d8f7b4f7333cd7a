"""Tiny ONNX models built with onnx.helper, shaped like the demo's fraud models.

``write_scoring_model`` has the demo interface: inputs ``x`` FP32 [-1, 1], ``y`` FP32
[-1, 1] and ``cat`` BYTES [-1, 1]; outputs ``label`` INT64 [-1] and ``probabilities``
FP32 [-1, 2] whose rows sum to 1. The score is ``z = x + y + w(cat)`` with
``w("online") = 1``, ``w("travel") = 0.5`` and 0 otherwise, and
``probabilities = softmax([-z, z])``, so ``p_fraud = 1 / (1 + exp(-2z))``.

``write_echo_model`` returns each input unchanged, one per datatype, to check that
every conversion (JSON and binary) round-trips.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

ECHO_TENSORS = {
    # name: (ONNX element type, OIP datatype, shape)
    "i64": (TensorProto.INT64, "INT64", [-1, 2]),
    "i8": (TensorProto.INT8, "INT8", [-1]),
    "u16": (TensorProto.UINT16, "UINT16", [-1]),
    "f64": (TensorProto.DOUBLE, "FP64", [-1]),
    "f16": (TensorProto.FLOAT16, "FP16", [-1]),
    "flag": (TensorProto.BOOL, "BOOL", [-1]),
    "text": (TensorProto.STRING, "BYTES", [-1]),
}


def _dims(shape: list[int]) -> list[Any]:
    return ["batch" if dim == -1 else dim for dim in shape]


def _save(model: onnx.ModelProto, model_dir: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    artifact = model_dir / "model.onnx"
    onnx.save(model, artifact)
    return artifact


def scoring_model() -> onnx.ModelProto:
    value = helper.make_tensor_value_info
    inputs = [
        value("x", TensorProto.FLOAT, ["batch", 1]),
        value("y", TensorProto.FLOAT, ["batch", 1]),
        value("cat", TensorProto.STRING, ["batch", 1]),
    ]
    outputs = [
        value("label", TensorProto.INT64, ["batch"]),
        value("probabilities", TensorProto.FLOAT, ["batch", 2]),
    ]
    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["cat"],
            ["cat_weight"],
            domain="ai.onnx.ml",
            keys_strings=["online", "travel"],
            values_floats=[1.0, 0.5],
            default_float=0.0,
        ),
        helper.make_node("Add", ["x", "y"], ["xy"]),
        helper.make_node("Add", ["xy", "cat_weight"], ["z"]),
        helper.make_node("Neg", ["z"], ["minus_z"]),
        helper.make_node("Concat", ["minus_z", "z"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(nodes, "tiny-fraud", inputs, outputs)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )


def echo_model() -> onnx.ModelProto:
    inputs, outputs, nodes = [], [], []
    for name, (elem_type, _, shape) in ECHO_TENSORS.items():
        inputs.append(helper.make_tensor_value_info(name, elem_type, _dims(shape)))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", elem_type, _dims(shape)))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_scoring_model(
    model_dir: Path, *, card: bool = True, name: str = "fraud", version: str | None = "1"
) -> Path:
    """Write ``model.onnx`` and, unless ``card=False``, a matching ``model-card.json``."""
    artifact = _save(scoring_model(), model_dir)
    if card:
        write_card(model_dir, _scoring_card(name, version, artifact))
    return model_dir


def write_echo_model(model_dir: Path) -> Path:
    artifact = _save(echo_model(), model_dir)
    write_card(model_dir, {"name": "echo", "version": "3", "artifact": _artifact(artifact)})
    return model_dir


def write_card(model_dir: Path, card: dict[str, Any]) -> None:
    (model_dir / "model-card.json").write_text(json.dumps(card, indent=2))


def _artifact(artifact: Path) -> dict[str, Any]:
    data = artifact.read_bytes()
    return {"path": artifact.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _scoring_card(name: str, version: str | None, artifact: Path) -> dict[str, Any]:
    card: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "version": version,
        "role": "primary",
        "description": "test double of the fraud model",
        "platform": "onnx_onnxv1",
        "artifact": _artifact(artifact),
        "entity_key": None,
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [-1, 1],
                "kind": "float",
                "source": "request",
            },
            {
                "name": "y",
                "datatype": "FP32",
                "shape": [-1, 1],
                "kind": "float",
                "source": "request",
            },
            {
                "name": "cat",
                "datatype": "BYTES",
                "shape": [-1, 1],
                "kind": "category",
                "source": "request",
                "categories": ["online", "travel", "grocery"],
            },
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1], "meaning": "argmax"},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2], "meaning": "softmax"},
        ],
        "score": {"output": "probabilities", "index": 1, "threshold": 0.5},
    }
    if version is None:
        del card["version"]
    return card
