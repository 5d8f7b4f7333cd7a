"""Property-based: valid payloads from the fraud-v1 contract pass; each mutation fails with
the rule it breaks (hypothesis generates both)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import MODELS

from gateway.contracts.card import CardInput, load_card
from gateway.contracts.oip import InferChecker
from gateway.contracts.problems import ContractViolation, Problem
from gateway.contracts.v1 import InstanceDecoder
from gateway.settings.schema import BoundsSettings, ContractSettings

CARD = load_card(MODELS / "fraud-v1")
CONTRACT = ContractSettings(ranges={"hour": BoundsSettings(min=0, max=23)})
CHECKER = InferChecker.compile(CARD, max_batch=16, contract=CONTRACT)
DECODER = InstanceDecoder.compile(CARD, max_instances=16, contract=CONTRACT)
SPECS = {spec.name: spec for spec in CARD.inputs}
RULES = {name: entry.values for name, entry in CHECKER.inputs.items()}
NUMERIC = [s.name for s in CARD.inputs if s.kind in ("float", "int")]
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def field_values(spec: CardInput) -> st.SearchStrategy[Any]:
    """Valid v1 values of one field: inside the compiled range, from the category set."""
    rule = RULES[spec.name]
    if spec.kind == "category":
        return st.sampled_from(sorted(rule.categories or ()))
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        return st.integers(int(rule.lo or 0), int(rule.hi or 0))
    return st.floats(rule.lo, rule.hi, allow_nan=False, allow_infinity=False)


def tensor_value(spec: CardInput, value: Any) -> Any:
    if spec.datatype.startswith("FP"):
        return float(value)
    return value


@st.composite
def v1_instances(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = draw(st.integers(1, 8))
    fields = st.fixed_dictionaries({s.name: field_values(s) for s in CARD.inputs})
    instances = draw(st.lists(fields, min_size=rows, max_size=rows))
    for index, instance in enumerate(instances):
        instance["customer_id"] = f"c-{index:04d}"
    return instances


@st.composite
def v2_requests(draw: st.DrawFn) -> dict[str, Any]:
    instances = draw(v1_instances())
    nested = draw(st.booleans())
    inputs = []
    for spec in CARD.inputs:
        column = [tensor_value(spec, row[spec.name]) for row in instances]
        data: list[Any] = [[v] for v in column] if nested else column
        inputs.append({"name": spec.name, "datatype": spec.datatype,
                       "shape": [len(instances), 1], "data": data})  # fmt: skip
    doc: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        doc["id"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        doc["outputs"] = [{"name": "probabilities"}]
    return doc


def rules_of(error: ContractViolation) -> set[str]:
    return {p.rule for p in error.problems if isinstance(p, Problem)}


@PROFILE
@given(v2_requests())
def test_valid_v2_requests_pass(doc: dict[str, Any]) -> None:
    assert CHECKER.check(doc) == doc["inputs"][0]["shape"][0]


@PROFILE
@given(v1_instances())
def test_valid_v1_instances_decode(instances: list[dict[str, Any]]) -> None:
    inputs, batch = DECODER.decode({"instances": instances})
    assert batch == len(instances)
    assert [i["name"] for i in inputs] == list(SPECS)


def _input(doc: dict[str, Any], name: str) -> dict[str, Any]:
    tensor: dict[str, Any] = next(t for t in doc["inputs"] if t["name"] == name)
    if tensor["data"] and isinstance(tensor["data"][0], list):
        tensor["data"] = [x for row in tensor["data"] for x in row]
    return tensor


def _set_value(doc: dict[str, Any], name: str, row: int, value: Any) -> None:
    tensor = _input(doc, name)
    tensor["data"][row % len(tensor["data"])] = value


V2_MUTATIONS: dict[str, Any] = {
    "range": lambda doc, r, d: _range_mutation(doc, r, d),
    "category": lambda doc, r, d: _set_value(doc, "merchant_category", r, "casino"),
    "element_type": lambda doc, r, d: _set_value(
        doc,
        d.draw(st.sampled_from(["amount", "hour", "merchant_category"])),
        r,
        d.draw(st.sampled_from([True, {"v": 1}])),
    ),
    "nan": lambda doc, r, d: _set_value(doc, "amount", r, None),
    "bool": lambda doc, r, d: _set_value(doc, "is_foreign", r, 0.5),
    "missing_input": lambda doc, r, d: doc["inputs"].pop(r % len(doc["inputs"])),
    "datatype_mismatch": lambda doc, r, d: _input(doc, "amount").update(datatype="FP64"),
    "element_count": lambda doc, r, d: _input(doc, "hour")["data"].append(3),
    "unknown_output": lambda doc, r, d: doc.update(outputs=[{"name": "logits"}]),
    "id": lambda doc, r, d: doc.update(
        id=d.draw(st.integers() | st.lists(st.text()) | st.text(min_size=257, max_size=300))
    ),
    "unknown_input": lambda doc, r, d: doc["inputs"].append(
        {"name": "colour", "datatype": "BYTES", "shape": [1, 1], "data": ["red"]}
    ),
    "duplicate_input": lambda doc, r, d: doc["inputs"].append(copy.deepcopy(doc["inputs"][0])),
}


def _range_mutation(doc: dict[str, Any], row: int, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NUMERIC))
    rule = RULES[name]
    above = data.draw(st.booleans()) or (rule.lo == 0 and SPECS[name].kind == "int")
    if rule.lo is not None and rule.lo <= -(2**62):
        above = True
    bound = rule.hi if above else rule.lo
    assert bound is not None
    step = data.draw(st.integers(1, 10**6))
    value = bound + step if above else bound - step
    if not above and bound == 0 and SPECS[name].kind == "int":
        value = -step
    if SPECS[name].kind == "int":
        value = int(value)
    _set_value(doc, name, row, tensor_value(SPECS[name], value))


@PROFILE
@given(v2_requests(), st.sampled_from(sorted(V2_MUTATIONS)), st.integers(0, 64), st.data())
def test_mutated_v2_requests_fail_with_the_rule_they_break(
    doc: dict[str, Any], rule: str, row: int, data: st.DataObject
) -> None:
    V2_MUTATIONS[rule](doc, row, data)
    with pytest.raises(ContractViolation) as caught:
        CHECKER.check(doc)
    assert rule in rules_of(caught.value), caught.value.message
    assert "(rule: " in caught.value.message


V1_MUTATIONS: dict[str, Any] = {
    "range": lambda inst, d: inst.update(hour=d.draw(st.integers(24, 10**6) | st.integers(-(10**6), -1))),
    "category": lambda inst, d: inst.update(merchant_category=d.draw(st.text(min_size=1).filter(lambda s: s not in SPECS["merchant_category"].categories))),  # type: ignore[operator]
    "field_type": lambda inst, d: inst.update(amount=d.draw(st.text() | st.booleans())),
    "null": lambda inst, d: inst.update(hour=None),
    "missing_field": lambda inst, d: inst.pop(d.draw(st.sampled_from(sorted(SPECS)))),
    "unknown_field": lambda inst, d: inst.update(colour="red"),
}  # fmt: skip


@PROFILE
@given(v1_instances(), st.sampled_from(sorted(V1_MUTATIONS)), st.integers(0, 64), st.data())
def test_mutated_v1_instances_fail_with_the_rule_and_row(
    instances: list[dict[str, Any]], rule: str, row: int, data: st.DataObject
) -> None:
    row %= len(instances)
    V1_MUTATIONS[rule](instances[row], data)
    with pytest.raises(ContractViolation) as caught:
        DECODER.decode({"instances": instances})
    problems = [p for p in caught.value.problems if isinstance(p, Problem) and p.rule == rule]
    assert problems, caught.value.message
    assert problems[0].row == row
    assert f"instances[{row}]" in caught.value.message


def test_an_over_long_entity_key_is_refused_when_features_come_from_the_store() -> None:
    decoder = InstanceDecoder.compile(CARD, 4, store_features=True, contract=CONTRACT)
    instance = {"customer_id": "c" * 300, "amount": 5.0, "merchant_category": "grocery",
                "hour": 3, "is_foreign": False}  # fmt: skip
    with pytest.raises(ContractViolation) as caught:
        decoder.decode_instances({"instances": [instance]})
    assert "instances[0].customer_id: string of 300 characters; the maximum is 256" in str(
        caught.value
    )
    assert rules_of(caught.value) == {"max_string_length"}
