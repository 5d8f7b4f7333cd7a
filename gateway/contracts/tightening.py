"""Checks of ``models.<name>.contract`` against the model's card, run at config load.

Every field a contract names must be one of the card's inputs (or outputs, for
``output_ranges``), a category override belongs to a category input, a range override
to a numeric one; otherwise the config is refused with the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.contracts.card import ModelCard

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings


def contract_problems(card: ModelCard, contract: ContractSettings) -> list[tuple[str, str]]:
    """``(key path under the contract, message)`` for every name the card does not know."""
    kinds = {spec.name: spec.kind for spec in card.inputs}
    outputs = {out.name for out in card.outputs}
    problems: list[tuple[str, str]] = []
    for name in contract.ranges:
        if kinds.get(name) not in ("float", "int"):
            problems.append((f"ranges.{name}", _not_a(name, "numeric input", kinds)))
    for name in contract.categories:
        if kinds.get(name) != "category":
            problems.append((f"categories.{name}", _not_a(name, "category input", kinds)))
    for name in contract.nullable:
        if name not in kinds:
            problems.append(("nullable", _not_a(name, "input", kinds)))
    for name in contract.output_ranges:
        if name not in outputs:
            problems.append((f"output_ranges.{name}", f"{name!r} is not an output of the model; it has {sorted(outputs)}"))  # fmt: skip
    return problems


def _not_a(name: str, what: str, kinds: Mapping[str, str]) -> str:
    return f"{name!r} is not a {what} of the model; its inputs are {kinds}"
