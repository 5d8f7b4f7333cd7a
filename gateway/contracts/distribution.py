"""What a model saw in training, per input: outside it a value is unusual, not invalid.

A value inside its input's domain (:mod:`gateway.contracts.values`; else a 400) can still
lie outside what the model was trained on: an ``amount`` above the largest training
amount, a ``chargeback_rate_90d`` of 0.6, a merchant category the model never saw. Such a
value is **out of distribution**: often the very case a fraud model exists for, so by
default it is served, and flagged on the answer and counted
(``contract.out_of_distribution: serve | fallback | reject``).

The training range is the card's ``range``, widened by ``contract.range_margin`` of its
span on each side (default 0: exactly what training saw); the categories are the card's.
Compiled once per config load; a check walks each column once, with a fast path for one
row.

    >>> check = DistributionCheck((UsualValues("hour", "request", 0, 20),))
    >>> check.unusual({"hour": [3, 22, 23]})
    {'hour': 2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.contracts.card import FieldSource, ModelCard
from gateway.contracts.problems import ContractViolation, violation

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings


@dataclass(frozen=True, slots=True)
class UsualValues:
    """The training range of a numeric input, or the training categories of a category one."""

    name: str
    source: FieldSource
    lo: float = -math.inf
    hi: float = math.inf
    categories: frozenset[str] | None = None

    def count(self, values: Sequence[Any]) -> int:
        """How many of ``values`` lie outside (nulls and NaN are the domain's business)."""
        cats = self.categories
        if cats is not None:
            if len(values) == 1:
                value = values[0]
                return int(value is not None and value not in cats)
            return sum(1 for v in values if v is not None and v not in cats)
        lo, hi = self.lo, self.hi
        if len(values) == 1:
            value = values[0]
            return int(value is not None and value == value and not lo <= value <= hi)
        return sum(1 for v in values if v is not None and v == v and not lo <= v <= hi)

    def describe(self) -> str:
        if self.categories is not None:
            return f"a category the model never saw; it saw {sorted(self.categories)}"
        return f"outside the training range [{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True, slots=True)
class DistributionCheck:
    """The usual values of every input of one model that has any (numeric and category)."""

    inputs: tuple[UsualValues, ...]

    @classmethod
    def compile(cls, card: ModelCard, contract: ContractSettings) -> DistributionCheck:
        usual = []
        for spec in card.inputs:
            if spec.kind in ("float", "int") and spec.range is not None:
                lo, hi = widen(
                    spec.range.min,
                    spec.range.max,
                    contract.range_margin,
                    integer=spec.kind == "int",
                )
                usual.append(UsualValues(spec.name, spec.source, lo, hi))
            elif spec.kind == "category" and spec.categories is not None:
                usual.append(UsualValues(spec.name, spec.source, categories=frozenset(spec.categories)))  # fmt: skip
        return cls(tuple(usual))

    def unusual(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, int]:
        """Input name -> how many of its values are out of distribution, for the inputs of
        ``columns`` that have any (empty: nothing unusual)."""
        found: dict[str, int] = {}
        for usual in self.inputs:
            values = columns.get(usual.name)
            if values:
                count = usual.count(values)
                if count:
                    found[usual.name] = count
        return found

    def refuse(self, names: Sequence[str]) -> ContractViolation:
        """The 400 for unusual values the client sent (``out_of_distribution: reject``)."""
        by_name = {u.name: u for u in self.inputs}
        return ContractViolation(
            [
                violation(name, name, "out_of_distribution", by_name[name].describe())
                for name in names
            ]
        )


def widen(low: float, high: float, margin: float, *, integer: bool) -> tuple[float, float]:
    """Training range ``[low, high]`` widened by ``margin`` of its span.

    ``[min - margin * span, max + margin * span]``, where ``span = max - min`` (or
    ``max(|max|, 1)`` for a single-valued range); the lower bound stays at 0 when the
    training minimum is >= 0, and an ``int`` field's bounds are rounded inwards to integers.

    >>> widen(0.57, 100.57, 0.5, integer=False)
    (0.0, 150.57)
    >>> widen(0, 23, 0.5, integer=True)
    (0, 34)
    """
    span = high - low if high > low else max(abs(high), 1.0)
    lo, hi = low - margin * span, high + margin * span
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return math.ceil(lo), math.floor(hi)
    return round(lo, 9), round(hi, 9)
