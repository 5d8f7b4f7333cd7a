"""Property-based: valid payloads from the fraud-v1 contract pass; each mutation fails with
the rule it breaks (hypothesis generates both).

Valid means inside each input's domain (the card's ``domain``, or ``contract.ranges``),
not inside what the model saw in training: values up to ten times the training maximum
are generated too, and must pass."""

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
from gateway.contracts.values import compile_rule
from gateway.settings.schema import BoundsSettings, ContractSettings

CARD = load_card(MODELS / "fraud-v1")
SPECS = {spec.name: spec for spec in CARD.inputs}
_SEEN = SPECS["merchant_category"].categories
assert _SEEN
CARD_CATEGORIES: tuple[str, ...] = _SEEN  # what training saw
# A category is invalid only against a configured set: configure one so `category` is tested.
CONTRACT = ContractSettings(
    ranges={"hour": BoundsSettings(min=0, max=23)},
    categories={"merchant_category": CARD_CATEGORIES},
)
CHECKER = InferChecker.compile(CARD, max_batch=16, contract=CONTRACT)
DECODER = InstanceDecoder.compile(CARD, max_instances=16, contract=CONTRACT)
RULES = {name: entry.values for name, entry in CHECKER.inputs.items()}
NUMERIC = [s.name for s in CARD.inputs if s.kind in ("float", "int")]
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A bound this far out is the datatype's width (INT64), not a domain side.
_OPEN = 2**62


def _side(bound: float | None) -> float | None:
    """A compiled bound, or None when that side is open (only the datatype's width)."""
    return None if bound is None or abs(bound) >= _OPEN else bound


def domain_of(name: str) -> tuple[float | None, float | None]:
    """The valid values of a numeric input, from the card's ``domain`` or the configured
    range that replaces it (not from the compiled rule); None: an open side."""
    if name in CONTRACT.ranges:
        bounds = CONTRACT.ranges[name]
        return bounds.min, bounds.max
    domain = SPECS[name].domain
    assert domain is not None, name
    return domain.min, domain.max


def test_the_compiled_bounds_are_the_domain_or_the_configured_range() -> None:
    """The checker refuses exactly outside the domain, not outside what training saw; the
    configured range for ``hour`` and the configured category set apply."""
    for name in NUMERIC:
        rule = RULES[name]
        assert (_side(rule.lo), _side(rule.hi)) == domain_of(name), name
    assert domain_of("amount") == (0, None)
    assert domain_of("chargeback_rate_90d") == (0, 1)
    assert domain_of("txn_count_7d") == (0, None)
    assert domain_of("account_age_days") == (0, None)
    assert domain_of("hour") == (0, 23)
    assert RULES["merchant_category"].categories == frozenset(CARD_CATEGORIES)
    card_only = compile_rule(SPECS["merchant_category"])
    assert card_only.categories is None and card_only.passes(["casino"])


def field_values(spec: CardInput) -> st.SearchStrategy[Any]:
    """Valid v1 values of one field: inside the domain (an open side stops at ten times the
    training maximum, well past what the model saw), a category from the card."""
    if spec.kind == "category":
        return st.sampled_from(sorted(CARD_CATEGORIES))
    if spec.kind == "bool":
        return st.booleans()
    lo, hi = domain_of(spec.name)
    assert spec.range is not None, spec.name
    if lo is None:
        lo = min(spec.range.min, 0) * 10 - 10
    if hi is None:
        hi = max(spec.range.max, 1) * 10
    if spec.kind == "int":
        return st.integers(int(lo), int(hi))
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


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


def outside_the_domain(name: str, data: st.DataObject) -> float | int:
    """A value of ``name`` outside its domain (or configured range), on a side it has."""
    lo, hi = domain_of(name)
    sides = [side for side in ("below", "above") if (lo if side == "below" else hi) is not None]
    assert sides, f"{name} has an unbounded domain"
    side = data.draw(st.sampled_from(sides))
    if SPECS[name].kind == "int":
        step: float = data.draw(st.integers(1, 10**6))
    else:
        step = data.draw(st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False))
    bound = hi if side == "above" else lo
    assert bound is not None
    value = bound + step if side == "above" else bound - step
    return int(value) if SPECS[name].kind == "int" else value


def _range_mutation(doc: dict[str, Any], row: int, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NUMERIC))
    _set_value(doc, name, row, tensor_value(SPECS[name], outside_the_domain(name, data)))


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
    "range": lambda inst, d: inst.update({(n := d.draw(st.sampled_from(NUMERIC))): outside_the_domain(n, d)}),
    "category": lambda inst, d: inst.update(merchant_category=d.draw(st.text(min_size=1).filter(lambda s: s not in CARD_CATEGORIES))),
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


CARD_ONLY = InferChecker.compile(CARD, max_batch=16, contract=ContractSettings())


@PROFILE
@given(v2_requests(), st.text(max_size=256))
def test_a_category_the_model_never_saw_is_valid_without_a_configured_set(
    doc: dict[str, Any], category: str
) -> None:
    tensor = _input(doc, "merchant_category")
    tensor["data"] = [category] * len(tensor["data"])
    assert CARD_ONLY.check(doc) == doc["inputs"][0]["shape"][0]
