"""The v1 named-field decoder: instances become the card's tensors, in the card's order."""

from __future__ import annotations

from typing import Any

import pytest
from support import card_doc

from gateway.contracts.card import ModelCard
from gateway.contracts.outputs import ScoreReader
from gateway.contracts.v1 import InstanceDecoder
from gateway.errors import InvalidInput, UpstreamBadResponse

CARD = ModelCard.model_validate(card_doc())
DECODER = InstanceDecoder.compile(CARD, max_instances=3)
INSTANCE = {"customer_id": "c-0001", "avg_amount_30d": 80, "txn_count_7d": 3,
            "merchant_category": "travel", "is_foreign": True}  # fmt: skip


def test_instances_become_tensors_in_card_order_with_converted_values() -> None:
    inputs, batch = DECODER.decode({"instances": [INSTANCE, INSTANCE | {"is_foreign": False}]})
    assert batch == 2
    assert [i["name"] for i in inputs] == [i.name for i in CARD.inputs]
    assert inputs[0] == {
        "name": "avg_amount_30d",
        "datatype": "FP32",
        "shape": [2, 1],
        "data": [80.0, 80.0],
    }
    assert inputs[2]["data"] == ["travel", "travel"]
    assert inputs[3]["data"] == [1.0, 0.0]
    assert all(isinstance(v, float) for v in inputs[1]["data"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "instances: required"),
        ({"instances": {}}, "instances: required"),
        ({"instances": [INSTANCE] * 4}, "instances: 4 given, the maximum is 3"),
        ({"instances": [7]}, "instances[0]: must be an object"),
        ({"instances": [INSTANCE | {"colour": "red"}]}, "instances[0]: unknown field(s) ['colour']"),
        ({"instances": [{k: v for k, v in INSTANCE.items() if k != "amount" and k != "is_foreign"}]}, "instances[0].is_foreign: required field is missing"),
        ({"instances": [INSTANCE | {"avg_amount_30d": "80"}]}, "instances[0].avg_amount_30d: must be a number, got '80'"),
        ({"instances": [INSTANCE | {"avg_amount_30d": True}]}, "instances[0].avg_amount_30d: must be a number"),
        ({"instances": [INSTANCE, INSTANCE | {"txn_count_7d": 2.5}]}, "instances[1].txn_count_7d: must be an integer"),
        ({"instances": [INSTANCE | {"is_foreign": 1}]}, "instances[0].is_foreign: must be true or false"),
        ({"instances": [INSTANCE | {"merchant_category": 3}]}, "instances[0].merchant_category: must be a string"),
    ],
)  # fmt: skip
def test_each_broken_field_is_named_with_its_row(doc: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        DECODER.decode(doc)
    assert message in caught.value.message


def test_a_long_list_of_problems_is_capped() -> None:
    bad = [INSTANCE | {"avg_amount_30d": "x", "txn_count_7d": "y"}] * 3
    with pytest.raises(InvalidInput) as caught:
        InstanceDecoder.compile(CARD, max_instances=100).decode({"instances": bad * 5})
    assert caught.value.message.endswith("and 10 more")


READER = ScoreReader.compile(CARD)


def answer(data: list[Any], shape: list[int]) -> dict[str, Any]:
    return {
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": shape, "data": data}]
    }


def test_scores_come_from_the_cards_column_and_threshold() -> None:
    flat = answer([0.9, 0.1, 0.2, 0.8], [2, 2])
    assert READER.predictions("up", flat, 2) == [
        {"score": 0.1, "label": "legit"},
        {"score": 0.8, "label": "fraud"},
    ]
    nested = answer([[0.9, 0.1], [0.2, 0.8]], [2, 2])
    assert READER.predictions("up", nested, 2) == READER.predictions("up", flat, 2)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"outputs": []}, "lacks the output 'probabilities'"),
        (answer([0.9, 0.1], [1, 2]), "has shape [1, 2] for a batch of 2"),
        (answer([0.9], [2, 1]), "has shape [2, 1] for a batch of 2"),
        (answer(["a", "b", "c", "d"], [2, 2]), "holds non-numbers"),
    ],
)
def test_an_answer_without_usable_scores_is_an_upstream_failure(doc: Any, message: str) -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        READER.predictions("fraud-v1", doc, 2)
    assert message in caught.value.message
    assert caught.value.upstream == "fraud-v1"


STORE_DECODER = InstanceDecoder.compile(CARD, max_instances=3, store_features=True)
REQUEST_ONLY = {"customer_id": "c-0001", "merchant_category": "travel", "is_foreign": True}


def test_with_store_features_instances_carry_the_entity_and_request_fields_only() -> None:
    decoded = STORE_DECODER.decode_instances(
        {"instances": [REQUEST_ONLY, REQUEST_ONLY | {"customer_id": "c-2"}]}
    )
    assert decoded.entity_ids == ["c-0001", "c-2"]
    assert set(decoded.columns) == {"merchant_category", "is_foreign"}
    inputs = STORE_DECODER.tensors(decoded, {"avg_amount_30d": [80, 81.5], "txn_count_7d": [3, 4]})
    assert [i["name"] for i in inputs] == [i.name for i in CARD.inputs]
    assert inputs[0]["data"] == [80.0, 81.5] and all(
        isinstance(v, float) for v in inputs[1]["data"]
    )
    assert inputs[3]["data"] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        (REQUEST_ONLY | {"avg_amount_30d": 80}, "instances[0]: unknown field(s) ['avg_amount_30d']"),
        ({k: v for k, v in REQUEST_ONLY.items() if k != "customer_id"}, "instances[0].customer_id: required field is missing"),
        (REQUEST_ONLY | {"customer_id": 42}, "instances[0].customer_id: must be a non-empty string, got 42"),
        (REQUEST_ONLY | {"customer_id": ""}, "instances[0].customer_id: must be a non-empty string"),
    ],
)  # fmt: skip
def test_with_store_features_a_client_cannot_send_feature_values(
    instance: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        STORE_DECODER.decode_instances({"instances": [instance]})
    assert message in caught.value.message
