"""Value rules for one model input, compiled once per config load and run on whole columns.

A :class:`ValueRule` answers two questions about a flat, row-major list of one input's
elements: :meth:`~ValueRule.passes` (the hot path: C-level ``set``/``min``/``max`` over the
column, no per-element Python work) and, only when that fails, :meth:`~ValueRule.explain`
(a per-element walk naming every offending row, the rule and what is allowed).

These are the input's **domain**: what no real request can break (an invalid value is a
400). What the model saw in training is a separate, softer question
(:mod:`gateway.contracts.distribution`): a valid but unusual value is served and flagged.

Rules, by name: ``element_type`` (the JSON kind of the datatype; integers within their
INT/UINT width), ``nan`` (null or non-finite in a float tensor unless ``allow_nan``),
``null`` (null elsewhere unless the field is ``nullable``), ``range`` (the card's
``domain``, or the configured ``contract.ranges``), ``category`` (the configured
``contract.categories``; the card's training categories only flag), ``bool`` (a bool
field carried in a numeric tensor holds 0 or 1) and ``max_string_length``.

    >>> rule = ValueRule("hour", "INT64", lo=0, hi=23)
    >>> rule.passes([3, 14]), rule.passes([3, 30])
    (True, False)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from gateway.contracts.card import CardInput
from gateway.contracts.problems import Problem, shown, violation

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings

_INT_WIDTHS: Final[dict[str, tuple[int, int]]] = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
FLOAT_TYPES: Final = frozenset({"FP16", "FP32", "FP64"})
_KINDS: Final[dict[str, tuple[frozenset[type], str]]] = {
    **{name: (frozenset({int}), f"an integer in [{lo}, {hi}]") for name, (lo, hi) in _INT_WIDTHS.items()},
    **{name: (frozenset({int, float}), "a number") for name in FLOAT_TYPES},
    "BOOL": (frozenset({bool}), "true or false"),
    "BYTES": (frozenset({str}), "a string"),
}  # fmt: skip
_NONE: Final = type(None)
_BOOL_VALUES: Final = frozenset({0, 1})
#: numpy kinds a binary tensor may have for a numeric rule: (integer rule, float rule).
_ARRAY_KINDS: Final = ("iu", "iuf")
#: At most this many offending elements are named per input; the rest are counted.
MAX_EXPLAINED: Final = 5


@dataclass(frozen=True, slots=True)
class ValueRule:
    """Everything one input's elements must satisfy; build with :func:`compile_rule`."""

    field: str
    datatype: str
    lo: float | None = None
    hi: float | None = None
    categories: frozenset[str] | None = None
    boolean: bool = False  # a bool field in a numeric tensor: 0 or 1 only
    allow_null: bool = False
    max_string_length: int = 256
    types: frozenset[type] = dataclasses.field(init=False)
    expects: str = dataclasses.field(init=False)
    _check: Callable[[list[Any]], bool] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types, expects = _KINDS[self.datatype]
        if self.allow_null:
            types = types | {_NONE}
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "expects", expects)
        object.__setattr__(self, "_check", self._compile())

    def _compile(self) -> Callable[[list[Any]], bool]:
        """The fast check for this rule's datatype, with everything constant bound now."""
        types, lo, hi = self.types, self.lo, self.hi
        if _NONE in types:
            return lambda values: False  # nulls allowed: always take the careful path
        if self.datatype == "BYTES":
            cats, longest = self.categories, self.max_string_length
            if cats is not None:

                def category(values: list[Any]) -> bool:
                    if len(values) == 1:  # one row: skip building sets
                        return type(values[0]) is str and values[0] in cats
                    return set(map(type, values)) <= types and set(values) <= cats

                return category
            return lambda values: (
                set(map(type, values)) <= types and (max(map(len, values)) <= longest)
            )
        if self.datatype == "BOOL":
            return lambda values: set(map(type, values)) <= types
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        boolean = self.boolean
        floats = self.datatype in FLOAT_TYPES

        def numeric(values: list[Any]) -> bool:
            if len(values) == 1:  # one row: compare directly, no sets or reductions
                value = values[0]
                if type(value) not in types:
                    return False
                if boolean:
                    return value in _BOOL_VALUES
                return low <= value <= high and (not floats or value - value == 0)
            if not set(map(type, values)) <= types:
                return False
            if boolean:
                return set(values) <= _BOOL_VALUES
            if not (low <= min(values) and max(values) <= high):
                return False
            if floats:
                total = sum(values)  # NaN or +/-inf anywhere makes the sum non-finite
                return bool(total - total == 0)
            return True

        return numeric

    def passes(self, values: list[Any]) -> bool:
        """True when every element of the non-empty flat ``values`` obeys the rule."""
        return not values or self._check(values)

    def passes_array(self, values: np.ndarray[Any, Any]) -> bool:
        """As :meth:`passes`, for the flat numpy array of a binary tensor: its dtype is the
        element type, so only the kind, the range, 0/1 and finiteness are left to check,
        each one vectorised pass. A failure is explained from ``values.tolist()``."""
        if not values.size:
            return True
        if _NONE in self.types:
            return False  # nulls (NaN) allowed: the careful path decides
        kind: str = values.dtype.kind
        if self.datatype == "BOOL":
            return kind == "b"
        if kind not in _ARRAY_KINDS[self.datatype in FLOAT_TYPES]:
            return False
        if self.boolean:
            return bool(((values == 0) | (values == 1)).all())
        # Two reductions: NaN propagates into min, and an infinity is an extreme, so a
        # finite min and max mean every element is finite.
        low, high = values.min(), values.max()
        if kind == "f" and not (math.isfinite(low) and math.isfinite(high)):
            return False
        return (self.lo is None or bool(low >= self.lo)) and (
            self.hi is None or bool(high <= self.hi)
        )

    def explain(self, values: list[Any], where: str, width: int) -> list[str]:
        """Problems naming each offending element's row (``index // width``); [] if none.

        ``where`` locates the input, with ``{row}`` where the row index goes, e.g.
        ``"inputs[2] 'hour' row {row}"`` or ``"instances[{row}].hour"``.
        """
        problems: list[str] = []
        broken = 0
        for index, value in enumerate(values):
            found = self._element(value)
            if found is None:
                continue
            broken += 1
            if broken <= MAX_EXPLAINED:
                rule, message = found
                row = index // width if width else index
                at = where.replace("{row}", str(row))
                problems.append(violation(at, self.field, rule, message, row))
        if broken > MAX_EXPLAINED:
            at = where.replace("{row}", "*")
            more = f"{at}: and {broken - MAX_EXPLAINED} more bad elements"
            problems.append(Problem(more, self.field, "more"))
        return problems

    def _element(self, value: Any) -> tuple[str, str] | None:
        kind = type(value)
        if value is None:
            if self.allow_null:
                return None
            if self.datatype in FLOAT_TYPES:
                return "nan", "null (NaN) is not allowed; allowed: finite numbers"
            return "null", "null is not allowed; the field is not nullable"
        if kind not in self.types:
            return (
                "element_type",
                f"{shown(value)} is not {self.expects} (datatype {self.datatype})",
            )
        if self.datatype in _INT_WIDTHS:
            lo, hi = _INT_WIDTHS[self.datatype]
            if not lo <= value <= hi:
                return "element_type", f"{value} does not fit {self.datatype} [{lo}, {hi}]"
        if kind is float and not math.isfinite(value):
            if self.allow_null:
                return None
            return "nan", f"{value} is not allowed; allowed: finite numbers"
        if kind is str:
            if self.categories is not None:
                if value not in self.categories:
                    return "category", f"{shown(value)} is not one of {sorted(self.categories)}"
            elif len(value) > self.max_string_length:
                return (
                    "max_string_length",
                    f"string of {len(value)} characters; the maximum is {self.max_string_length}",
                )
            return None
        if self.boolean:
            if value not in _BOOL_VALUES:
                return "bool", f"{shown(value)} is not a boolean; allowed: 0 or 1"
            return None
        if kind is not bool and not (
            (self.lo is None or self.lo <= value) and (self.hi is None or value <= self.hi)
        ):
            return "range", f"{value} is outside the allowed range {_bounds(self.lo, self.hi)}"
        return None


def compile_rule(
    spec: CardInput,
    *,
    datatype: str | None = None,
    bounds: tuple[float | None, float | None] | None = None,
    categories: tuple[str, ...] | None = None,
    allow_nan: bool = False,
    nullable: bool = False,
    max_string_length: int = 256,
) -> ValueRule:
    """The domain rule for ``spec``: datatype from the card (or ``datatype``), bounds from
    the card's ``domain`` unless ``bounds`` replaces them, categories only when configured
    (a category the model never saw is unusual, not invalid)."""
    dtype = datatype or spec.datatype
    lo: float | None = None
    hi: float | None = None
    if bounds is not None:
        lo, hi = bounds
    elif spec.domain is not None and spec.kind in ("float", "int"):
        lo, hi = spec.domain.min, spec.domain.max
    if dtype in _INT_WIDTHS:
        width_lo, width_hi = _INT_WIDTHS[dtype]
        lo = width_lo if lo is None else max(lo, width_lo)
        hi = width_hi if hi is None else min(hi, width_hi)
    return ValueRule(
        field=spec.name,
        datatype=dtype,
        lo=lo,
        hi=hi,
        categories=(
            frozenset(categories) if categories is not None and spec.kind == "category" else None
        ),
        boolean=spec.kind == "bool" and dtype != "BOOL",
        allow_null=(allow_nan and dtype in FLOAT_TYPES) or nullable,
        max_string_length=max_string_length,
    )


def _bounds(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


def too_deep(value: Any, budget: int) -> bool:
    """True when ``value`` nests containers more than ``budget`` levels deep."""
    if isinstance(value, dict):
        value = list(value.values())
    elif not isinstance(value, list):
        return False
    if budget <= 0:
        return True
    return any(too_deep(item, budget - 1) for item in value if isinstance(item, list | dict))


def default_contract() -> ContractSettings:
    """The contract of a model whose config has no ``contract:`` section.

    Imported here, not at the top: ``gateway.settings`` imports the contracts (through the
    loader), so a top-level import would make the import order matter.
    """
    from gateway.settings.schema import ContractSettings

    return ContractSettings()
