"""The output contract and the compiled value rules, on plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import MODELS, write_config

from gateway.contracts.card import load_card
from gateway.contracts.oip import InferChecker
from gateway.contracts.output_check import OutputChecker
from gateway.contracts.problems import ContractViolation, OutputViolation
from gateway.contracts.values import ValueRule
from gateway.settings import ConfigError, load_config
from gateway.settings.schema import BoundsSettings, ConstantOutputSettings, ContractSettings

CARD = load_card(MODELS / "fraud-v1")
CHECK = OutputChecker.compile(CARD)


def answer(rows: int, probs: list[Any] | None = None, **changes: Any) -> dict[str, Any]:
    probabilities = {"name": "probabilities", "datatype": "FP32", "shape": [rows, 2],
                     "data": probs if probs is not None else [0.75, 0.25] * rows}  # fmt: skip
    probabilities.update(changes)
    label = {"name": "label", "datatype": "INT64", "shape": [rows], "data": [0] * rows}
    return {"outputs": [label, probabilities]}


def rules(doc: dict[str, Any], batch: int, **kwargs: Any) -> list[str]:
    with pytest.raises(OutputViolation) as caught:
        CHECK.check("fraud-v1", doc, batch, **kwargs)
    assert caught.value.upstream == "fraud-v1"
    return caught.value.rules


def test_a_good_answer_passes_flat_or_nested() -> None:
    assert CHECK.check("up", answer(3), 3) is False
    nested = answer(2, [[0.5, 0.5], [0.1, 0.9]])
    assert CHECK.check("up", nested, 2) is False


@pytest.mark.parametrize(
    ("doc", "batch", "rule"),
    [
        (answer(2, [None, None, None, None]), 2, "nan"),
        (answer(2, [1.7, 1.7, 1.7, 1.7]), 2, "probability"),
        (answer(2, [-0.2, 1.2, 0.5, 0.5]), 2, "probability"),
        (answer(2, [0.5, 0.4, 0.5, 0.5]), 2, "probability_sum"),
        (answer(2, [0.5, 0.5], shape=[2, 1]), 2, "output_shape"),
        (answer(2, [0.5, 0.5, 0.5], shape=[2, 2]), 2, "output_shape"),
        (answer(1), 2, "output_batch"),
        (answer(2, datatype="FP64"), 2, "output_datatype"),
        (answer(2, ["a", "b", "c", "d"]), 2, "element_type"),
        ({"outputs": [answer(2)["outputs"][0]]}, 2, "output_missing"),
        ({"outputs": [*answer(2)["outputs"], {"name": "logits"}]}, 2, "output_unknown"),
    ],
)
def test_each_broken_output_rule_is_named(doc: dict[str, Any], batch: int, rule: str) -> None:
    assert rule in rules(doc, batch)


def test_only_the_requested_outputs_are_expected() -> None:
    only = {"outputs": [answer(2)["outputs"][1]]}
    assert CHECK.check("up", only, 2, requested=("probabilities",)) is False


def test_a_one_d_output_sent_as_n_by_1_is_accepted_and_reshaped_to_the_cards() -> None:
    # MLServer's NumpyCodec answers the card's [-1] label as [N, 1].
    for label_data in ([[0], [1]], [0, 1]):
        doc = answer(2)
        doc["outputs"][0].update(shape=[2, 1], data=label_data)
        assert CHECK.check("mlserver", doc, 2) is False
        assert doc["outputs"][0]["shape"] == [2]
        assert doc["outputs"][0]["data"] == [0, 1]


def test_client_shape_upstream_keeps_the_servers_form() -> None:
    outputs = tuple(
        o.model_copy(update={"client_shape": "upstream"}) if o.name == "label" else o
        for o in CARD.outputs
    )
    checker = OutputChecker.compile(CARD.model_copy(update={"outputs": outputs}))
    doc = answer(2)
    doc["outputs"][0].update(shape=[2, 1], data=[[0], [1]])
    assert checker.check("mlserver", doc, 2) is False
    assert doc["outputs"][0]["shape"] == [2, 1]


def test_a_card_shape_ending_in_1_accepts_it_without_that_dimension() -> None:
    outputs = tuple(
        o.model_copy(update={"shape": (-1, 1)}) if o.name == "label" else o for o in CARD.outputs
    )
    checker = OutputChecker.compile(CARD.model_copy(update={"outputs": outputs}))
    doc = answer(3)  # label as [3]
    assert checker.check("up", doc, 3) is False
    assert doc["outputs"][0]["shape"] == [3, 1]


@pytest.mark.parametrize("shape", [[2, 2], [2, 1, 1], [1, 2], []])
def test_other_shapes_of_a_one_d_output_stay_violations(shape: list[int]) -> None:
    doc = answer(2)
    doc["outputs"][0].update(shape=shape, data=[0] * 4 if shape == [2, 2] else [0, 0])
    assert set(rules(doc, 2)) & {"output_shape", "output_batch"}


def test_unrequested_outputs_are_checked_then_dropped() -> None:
    doc = answer(2)  # label and probabilities, though only probabilities was asked for
    assert CHECK.check("up", doc, 2, requested=("probabilities",)) is False
    assert [o["name"] for o in doc["outputs"]] == ["probabilities"]
    broken = answer(2)
    broken["outputs"][0].update(data=[0.5, 1.5])  # a float label nobody asked for
    assert rules(broken, 2, requested=("probabilities",)) == ["element_type"]


def test_configured_output_ranges_apply() -> None:
    contract = ContractSettings(output_ranges={"probabilities": BoundsSettings(max=0.5)})
    checker = OutputChecker.compile(CARD, contract)
    with pytest.raises(OutputViolation, match=r"0.75 is outside \[0, 0.5\] \(rule: output_range\)"):
        checker.check("up", answer(1), 1)


def test_a_constant_model_is_flagged_then_refused_when_configured() -> None:
    flag = ConstantOutputSettings(enabled=True, window=4)
    checker = OutputChecker.compile(CARD, ContractSettings(constant_output=flag))
    flagged = [checker.check("up", answer(2), 2, body_hash=i) for i in range(4)]
    assert flagged == [False, False, True, True]
    assert checker.check("up", answer(2, [0.1, 0.9, 0.1, 0.9]), 2, body_hash=9) is False
    refuse = ConstantOutputSettings(enabled=True, window=2, reject=True)
    strict = OutputChecker.compile(CARD, ContractSettings(constant_output=refuse))
    strict.check("up", answer(1), 1, body_hash=1)
    strict.check("up", answer(1), 1, body_hash=2)
    with pytest.raises(OutputViolation, match="rule: constant_output"):
        strict.check("up", answer(1), 1, body_hash=3)


def test_the_same_input_repeated_is_not_a_constant_model() -> None:
    flag = ConstantOutputSettings(enabled=True, window=2)
    checker = OutputChecker.compile(CARD, ContractSettings(constant_output=flag))
    assert not any(checker.check("up", answer(1), 1, body_hash=7) for _ in range(10))


def test_integer_widths_and_value_rules() -> None:
    rule = ValueRule("n", "INT8", lo=-128, hi=127)
    assert rule.passes([1, -128, 127])
    assert not rule.passes([128])
    assert (
        "128 does not fit INT8 [-128, 127] (rule: element_type)"
        in rule.explain([128], "x row {row}", 1)[0]
    )
    assert rule.explain([1.5], "x row {row}", 1)[0].rule == "element_type"
    floats = ValueRule("f", "FP32")
    assert not floats.passes([1.0, float("nan")])
    assert floats.explain([1.0, float("inf")], "f row {row}", 1)[0].rule == "nan"
    assert ValueRule("f", "FP32", allow_null=True).explain([None], "f", 1) == []
    assert not ValueRule("b", "BOOL").passes([0])
    too_long = ValueRule("s", "BYTES", max_string_length=3)
    assert too_long.explain(["abcd"], "s row {row}", 1)[0].rule == "max_string_length"


def test_many_bad_elements_are_summarised() -> None:
    problems = ValueRule("n", "INT64", lo=0, hi=1).explain([5] * 12, "n row {row}", 1)
    assert len(problems) == 6
    assert problems[-1] == "n row *: and 7 more bad elements"


def test_safe_datatype_conversion_relabels_to_the_models_type() -> None:
    contract = ContractSettings(datatype_conversion="safe")
    checker = InferChecker.compile(CARD, 8, contract)
    doc = {"inputs": [{"name": s.name, "datatype": s.datatype, "shape": [1, 1],
                       "data": [s.default if not isinstance(s.default, bool) else 0.0]}
                      for s in CARD.inputs]}  # fmt: skip
    hour = next(t for t in doc["inputs"] if t["name"] == "hour")
    hour["datatype"] = "INT32"
    assert checker.check_converting(doc) == (1, True)
    assert hour["datatype"] == "INT64"
    hour["datatype"] = "FP32"
    with pytest.raises(
        ContractViolation,
        match=r"'FP32' does not match the model's 'INT64'; allowed: \['INT64', 'INT16', 'INT32', 'INT8', 'UINT16', 'UINT32', 'UINT8'\]",
    ):
        checker.check(doc)


def test_deeply_nested_extras_are_refused() -> None:
    checker = InferChecker.compile(CARD, 8, max_json_depth=8)
    deep: Any = 1
    for _ in range(10):
        deep = [deep]
    with pytest.raises(
        ContractViolation,
        match=r"body.extra: nested deeper than the limit of 8 \(rule: json_depth\)",
    ):
        checker.check({"inputs": [], "extra": deep} | {"inputs": [{"name": "x"}]})


def test_a_contract_naming_unknown_fields_is_refused(tmp_path: Path) -> None:
    extra = """    contract:
      ranges: {colour: {min: 0, max: 1}, merchant_category: {max: 3}}
      categories: {hour: [a]}
      nullable: [nope]
      output_ranges: {logits: {max: 1}}
"""
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, "http://127.0.0.1:1", extra))
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "models.fraud.contract.ranges.colour",
        "models.fraud.contract.ranges.merchant_category",
        "models.fraud.contract.categories.hour",
        "models.fraud.contract.nullable",
        "models.fraud.contract.output_ranges.logits",
    ]


def test_an_inverted_range_is_refused(tmp_path: Path) -> None:
    extra = "    contract: {ranges: {hour: {min: 5, max: 1}}}\n"
    with pytest.raises(ConfigError, match=r"min 5\.0 is greater than max 1\.0"):
        load_config(write_config(tmp_path, "http://127.0.0.1:1", extra))


def test_request_parameters_may_name_entities_as_a_list() -> None:
    checker = InferChecker.compile(CARD, 8)
    doc = {"inputs": [{"name": s.name, "datatype": s.datatype, "shape": [1, 1],
                       "data": [s.default if not isinstance(s.default, bool) else 0.0]}
                      for s in CARD.inputs]}  # fmt: skip
    assert checker.check(doc | {"parameters": {"customer_id": ["c-1"], "trace": True}}) == 1
    with pytest.raises(ContractViolation, match=r"\(rule: parameters\)"):
        checker.check(doc | {"parameters": {"tags": ["a"]}})


def test_v1_ignores_unknown_fields_and_imputes_nullable_ones_when_configured() -> None:
    from gateway.contracts.v1 import InstanceDecoder

    contract = ContractSettings(unknown_fields="ignore", nullable=("hour", "amount"))
    decoder = InstanceDecoder.compile(CARD, 4, contract=contract)
    instance: dict[str, Any] = {s.name: s.default for s in CARD.inputs}
    instance |= {"hour": None, "amount": None, "note": "hi", "customer_id": "c-1"}
    inputs, _ = decoder.decode({"instances": [instance]})
    columns = {i["name"]: i["data"] for i in inputs}
    assert columns["hour"] == [14] and columns["amount"] == [52.925]
    with pytest.raises(ContractViolation, match=r"instances\[0\].note: nested deeper"):
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        decoder.decode({"instances": [instance | {"note": deep}]})


@pytest.mark.parametrize(
    ("rule", "column", "ok"),
    [
        (ValueRule("f", "FP32", lo=0, hi=1), [0.5], True),
        (ValueRule("f", "FP32", lo=0, hi=1), [float("nan")], False),
        (ValueRule("f", "FP32"), [float("inf")], False),
        (ValueRule("f", "FP32", lo=0, hi=1), [2], False),
        (ValueRule("f", "FP32"), [True], False),
        (ValueRule("b", "FP32", boolean=True), [1.0], True),
        (ValueRule("b", "FP32", boolean=True), [0.5], False),
        (ValueRule("c", "BYTES", categories=frozenset({"a"})), ["a"], True),
        (ValueRule("c", "BYTES", categories=frozenset({"a"})), ["b"], False),
        (ValueRule("c", "BYTES", categories=frozenset({"a"})), [1], False),
    ],
)
def test_the_one_row_fast_path_agrees_with_the_general_one(
    rule: ValueRule, column: list[Any], ok: bool
) -> None:
    assert rule.passes(column) is ok
    assert rule.passes(column * 3) is ok
    assert (rule.explain(column, "x row {row}", 1) == []) is ok


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"datatype": ["FP32"]}, "datatype"),
        ({"datatype": {"a": 1}}, "datatype"),
        ({"data": [[1.0], ["x" * 10_000]]}, "element_type"),
    ],
)
def test_unhashable_or_huge_values_are_refused_briefly(change: dict[str, Any], rule: str) -> None:
    checker = InferChecker.compile(CARD, 8)
    doc = {"inputs": [{"name": s.name, "datatype": s.datatype, "shape": [2, 1],
                       "data": [s.default if not isinstance(s.default, bool) else 0.0] * 2}
                      for s in CARD.inputs]}  # fmt: skip
    doc["inputs"][0].update(change)
    with pytest.raises(ContractViolation) as caught:
        checker.check(doc)
    assert f"(rule: {rule})" in caught.value.message
    assert len(caught.value.message) < 500


def test_an_unhashable_output_name_is_an_unknown_output() -> None:
    checker = InferChecker.compile(CARD, 8)
    doc = {"inputs": [{"name": s.name, "datatype": s.datatype, "shape": [1, 1],
                       "data": [s.default if not isinstance(s.default, bool) else 0.0]}
                      for s in CARD.inputs], "outputs": [{"name": ["label"]}]}  # fmt: skip
    with pytest.raises(ContractViolation, match=r"\['label'\] is not an output of the model"):
        checker.check(doc)


def _deep(levels: int) -> Any:
    nested: Any = 1
    for _ in range(levels):
        nested = [nested]
    return nested


def test_a_thousand_deep_value_is_refused_without_recursing() -> None:
    """Found by the schemathesis run: echoing such a value once raised RecursionError (500)."""
    checker = InferChecker.compile(CARD, 8)
    doc = {"inputs": [{"name": s.name, "datatype": s.datatype, "shape": [2, 1],
                       "data": [s.default if not isinstance(s.default, bool) else 0.0] * 2}
                      for s in CARD.inputs]}  # fmt: skip
    doc["inputs"][4]["data"][1] = _deep(1000)
    with pytest.raises(ContractViolation, match=r"row 1: \[\[\[\[\.\.\.\]\]\]\] is not a number"):
        checker.check(doc)
    from gateway.contracts.v1 import InstanceDecoder

    instance = {s.name: s.default for s in CARD.inputs} | {"amount": _deep(1000)}
    with pytest.raises(ContractViolation, match="rule: field_type"):
        InstanceDecoder.compile(CARD, 4).decode({"instances": [instance]})
    bad = answer(1)
    bad["outputs"][1]["data"] = [_deep(1000), 0.5]
    with pytest.raises(OutputViolation, match="rule: element_type"):
        CHECK.check("up", bad, 1)
