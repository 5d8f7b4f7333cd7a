"""The v1 API's value rules: what the named-field decoder checks beyond JSON types.

Compiled once per config load from the card and ``models.<name>.contract``, and called by
:class:`gateway.contracts.v1.InstanceDecoder` on whole columns after the instances have
been read, so the per-row loop stays as it was. Applies the same
:class:`~gateway.contracts.values.ValueRule` as the v2 checker (ranges, categories,
non-finite numbers, string length) to the request's fields, imputes the card's default for
a ``nullable`` field sent as null, and decides what an unknown field costs
(``unknown_fields: reject | ignore``; an ignored one may still not nest past the depth
limit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.contracts.card import ModelCard
from gateway.contracts.problems import shown, violation
from gateway.contracts.samples import typical_value
from gateway.contracts.values import (
    FLOAT_TYPES,
    ValueRule,
    compile_rule,
    default_contract,
    too_deep,
)

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings

# Depth of a field's value inside a v1 body: {"instances": [{"field": value}]}.
_FIELD_DEPTH = 3


@dataclass(frozen=True, slots=True)
class InstanceRules:
    """Value rules per field, nullable defaults and the unknown-field policy of one model."""

    rules: dict[str, ValueRule]
    defaults: dict[str, Any]  # nullable field -> the card's default in the field's JSON type
    reject_unknown: bool = True
    max_string_length: int = 256
    max_depth: int = 32

    @classmethod
    def compile(
        cls, card: ModelCard, contract: ContractSettings | None = None, max_json_depth: int = 32
    ) -> InstanceRules:
        contract = contract or default_contract()
        rules = {}
        for spec in card.inputs:
            configured = contract.ranges.get(spec.name)
            rules[spec.name] = compile_rule(
                spec,
                bounds=(configured.min, configured.max) if configured else None,
                categories=contract.categories.get(spec.name),
                # v1 JSON carries no NaN, and a null is imputed before the rule runs.
                allow_nan=contract.allow_nan and spec.datatype in FLOAT_TYPES,
                max_string_length=contract.max_string_length,
            )
        defaults = {
            spec.name: typical_value(spec) for spec in card.inputs if spec.name in contract.nullable
        }
        return cls(
            rules,
            defaults,
            contract.unknown_fields == "reject",
            contract.max_string_length,
            max_json_depth,
        )

    def impute(self, name: str, raw: Any) -> Any:
        """The default standing in for a null ``raw`` of a nullable field, else None."""
        return self.defaults.get(name) if raw is None else None

    def type_problem(self, row: int, name: str, raw: Any, expects: str) -> str:
        """The problem for a value the field's reader refused."""
        where = f"instances[{row}].{name}"
        if raw is None:
            return violation(
                where, name, "null", "null is not allowed; the field is not nullable", row
            )
        return violation(where, name, "field_type", f"must be {expects}, got {shown(raw)}", row)

    def entity_problem(self, row: int, key: str, entity: str) -> str | None:
        if len(entity) <= self.max_string_length:
            return None
        return violation(f"instances[{row}].{key}", key, "max_string_length",
                         f"string of {len(entity)} characters; the maximum is {self.max_string_length}", row)  # fmt: skip

    def unknown_problems(self, row: int, instance: dict[str, Any], unknown: list[str], allowed: Iterable[str]) -> list[str]:  # fmt: skip
        """Problems for ``unknown`` fields of ``instance``: all of them, or only too-deep ones."""
        if self.reject_unknown:
            shown = [name[:64] for name in unknown[:10]]
            return [violation(f"instances[{row}]", "instances", "unknown_field",
                              f"unknown field(s) {shown}; allowed: {sorted(allowed)}", row)]  # fmt: skip
        budget = self.max_depth - _FIELD_DEPTH
        return [
            violation(
                f"instances[{row}].{name[:64]}",
                "instances",
                "json_depth",
                f"nested deeper than the limit of {self.max_depth}",
                row,
            )
            for name in unknown
            if too_deep(instance[name], budget)
        ]

    def check_columns(self, columns: dict[str, list[Any]], batch: int) -> list[str]:
        """Value problems of every complete column (one value per instance)."""
        problems: list[str] = []
        for name, column in columns.items():
            rule = self.rules.get(name)
            if rule is None or len(column) != batch or rule.passes(column):
                continue
            problems.extend(rule.explain(column, f"instances[{{row}}].{name}", 1))
        return problems
