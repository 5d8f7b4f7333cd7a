"""The OIP v2 request checks compiled from a card."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support import card_doc

from gateway.contracts.card import ModelCard
from gateway.contracts.oip import InferChecker
from gateway.errors import InvalidInput

CARD = ModelCard.model_validate(card_doc())
CHECKER = InferChecker.compile(CARD, max_batch=4)


def request(rows: int = 2) -> dict[str, Any]:
    return {
        "id": "r-1",
        "inputs": [
            {"name": "avg_amount_30d", "datatype": "FP32", "shape": [rows, 1], "data": [80.0] * rows},
            {"name": "txn_count_7d", "datatype": "FP32", "shape": [rows, 1], "data": [[3.0]] * rows},
            {"name": "merchant_category", "datatype": "BYTES", "shape": [rows, 1], "data": ["grocery"] * rows},
            {"name": "is_foreign", "datatype": "FP32", "shape": [rows, 1], "data": [0.0] * rows},
        ],
    }  # fmt: skip


def test_a_valid_request_passes_with_its_batch_size() -> None:
    assert CHECKER.check(request(3)) == 3


def test_requested_outputs_of_the_model_pass() -> None:
    doc = request() | {"outputs": [{"name": "probabilities"}]}
    assert CHECKER.check(doc) == 2


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(request())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "body: must be a JSON object"),
        ({}, "inputs: required, a non-empty list"),
        ({"inputs": []}, "inputs: required, a non-empty list"),
        (mutate(["inputs", 0], 5), "inputs[0]: must be an object"),
        (mutate(["inputs", 0, "name"], KeyError), "inputs[0].name: required"),
        (mutate(["inputs", 0, "name"], "colour"), "inputs[0] 'colour': unknown input"),
        (mutate(["inputs", 1, "name"], "avg_amount_30d"), "inputs[1] 'avg_amount_30d': given more than once"),
        (mutate(["inputs", 0, "datatype"], "FLOAT"), "inputs[0] 'avg_amount_30d'.datatype: 'FLOAT' is not an OIP datatype"),
        (mutate(["inputs", 0, "datatype"], "FP64"), "'FP64' does not match the model's 'FP32'"),
        (mutate(["inputs", 0, "shape"], "2x1"), ".shape: must be a non-empty list of non-negative integers"),
        (mutate(["inputs", 0, "shape"], [2]), ".shape: [2] does not fit the model's [-1, 1]"),
        (mutate(["inputs", 0, "shape"], [1, 2]), ".shape: [1, 2] does not fit"),
        (mutate(["inputs", 0, "data"], "80"), ".data: required, a list"),
        (mutate(["inputs", 0, "data"], [1.0]), ".data: holds 1 elements, shape [2, 1] needs 2"),
        (mutate(["inputs", 1, "data"], [[1.0], [2.0, 3.0]]), ".data: nested lists are not rectangular"),
        (mutate(["inputs", 1, "data"], [[1.0], 2.0]), ".data: nested lists are not rectangular"),
        (mutate(["inputs"], request()["inputs"][:3]), "inputs: missing ['is_foreign']"),
        (mutate(["outputs"], [{"name": "logits"}]), "outputs[0]: 'logits' is not an output of the model"),
        (mutate(["outputs"], "probabilities"), "outputs: must be a list"),
        (request(5), "inputs: batch size 5 exceeds the maximum 4"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_named(doc: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        CHECKER.check(doc)
    assert message in caught.value.message


def test_inputs_disagreeing_on_batch_size_are_refused() -> None:
    doc = request(2)
    doc["inputs"][0] = {
        "name": "avg_amount_30d",
        "datatype": "FP32",
        "shape": [3, 1],
        "data": [1.0] * 3,
    }
    with pytest.raises(InvalidInput, match="batch size 2 differs from the first input's 3"):
        CHECKER.check(doc)


def test_several_problems_are_reported_together() -> None:
    doc = request()
    doc["inputs"][0]["datatype"] = "FP64"
    doc["inputs"][2]["shape"] = [9]
    with pytest.raises(InvalidInput) as caught:
        CHECKER.check(doc)
    assert "inputs[0] 'avg_amount_30d'.datatype" in caught.value.message
    assert "inputs[2] 'merchant_category'.shape" in caught.value.message
