"""Invalid is not unusual: the domain refuses, the training distribution only flags."""

from __future__ import annotations

import pytest
from support import MODELS

from gateway.contracts.card import Bounds, CardInput, load_card
from gateway.contracts.distribution import DistributionCheck, UsualValues, widen
from gateway.contracts.problems import ContractViolation
from gateway.contracts.values import compile_rule
from gateway.settings.schema import ContractSettings

CARD = load_card(MODELS / "fraud-v1")
AMOUNT = next(s for s in CARD.inputs if s.name == "amount")


def test_training_ranges_widen_by_the_margin_and_stay_non_negative() -> None:
    assert widen(0.57, 12045.16, 0.5, integer=False) == (0.0, 18067.455)
    assert widen(-10, 10, 0.25, integer=False) == (-15.0, 15.0)
    assert widen(1, 3650, 0.5, integer=True) == (0, 5474)
    assert widen(0.57, 12045.16, 0.0, integer=False) == (0.57, 12045.16)


def test_the_domain_not_the_training_range_is_the_hard_rule() -> None:
    with_domain = AMOUNT.model_copy(update={"domain": Bounds(min=0)})
    rule = compile_rule(with_domain)
    assert (rule.lo, rule.hi) == (0, None)
    assert rule.passes([50_000.0]) and not rule.passes([-1.0])
    assert compile_rule(with_domain, bounds=(None, 50.0)).hi == 50.0  # configured wins
    no_domain = AMOUNT.model_copy(update={"domain": None})
    assert compile_rule(no_domain).passes([1e12])  # an older card: nothing is invalid


def test_training_categories_flag_and_configured_ones_refuse() -> None:
    category = next(s for s in CARD.inputs if s.name == "merchant_category")
    assert compile_rule(category).passes(["casino"])
    assert not compile_rule(category, categories=("grocery",)).passes(["casino"])
    check = DistributionCheck.compile(CARD, ContractSettings())
    assert check.unusual({"merchant_category": ["grocery", "casino", "casino"]}) == {
        "merchant_category": 2
    }


def test_unusual_values_are_counted_per_input() -> None:
    check = DistributionCheck.compile(CARD, ContractSettings())
    train = AMOUNT.range
    assert train is not None
    assert check.unusual({"amount": [train.max], "hour": [14]}) == {}
    assert check.unusual({"amount": [train.max * 2, 1.0, None, float("nan")]}) == {"amount": 1}
    assert check.unusual({"amount": [50_000.0], "chargeback_rate_90d": [0.6]}) == {
        "amount": 1,
        "chargeback_rate_90d": 1,
    }
    wide = DistributionCheck.compile(CARD, ContractSettings(range_margin=10))
    assert wide.unusual({"amount": [50_000.0]}) == {}


def test_bool_inputs_and_inputs_without_a_range_are_never_unusual() -> None:
    check = DistributionCheck.compile(CARD, ContractSettings())
    assert "is_foreign" not in {u.name for u in check.inputs}
    bare = CardInput(name="x", datatype="FP32", shape=(-1, 1), kind="float", source="request")
    assert UsualValues(bare.name, bare.source).count([1e30]) == 0


def test_a_refusal_names_the_input_and_what_training_saw() -> None:
    check = DistributionCheck((UsualValues("hour", "request", 0, 20),))
    with pytest.raises(ContractViolation) as caught:
        raise check.refuse(["hour"])
    assert caught.value.message == (
        "hour: outside the training range [0, 20] (rule: out_of_distribution)"
    )
    assert caught.value.labels(frozenset({"hour"})) == [("hour", "out_of_distribution")]
