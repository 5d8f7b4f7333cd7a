"""The named-field (v1) API's instances, turned into the model's OIP input tensors.

``{"instances": [{"customer_id": "c-0042", "amount": 120.5, ...}]}`` becomes one
``[n, 1]`` tensor per card input, in the card's order, each element converted to the
input's datatype (a bool field of an FP32 input becomes 1.0 / 0.0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.contracts.card import CardInput, ModelCard
from gateway.errors import InvalidInput

_FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_category(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_READERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "float": (_as_float, "a number"),
    "int": (_as_int, "an integer"),
    "bool": (_as_bool, "true or false"),
    "category": (_as_category, "a string"),
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    datatype: str
    read: Callable[[Any], Any]
    expects: str
    to_tensor: Callable[[Any], Any]


def _field(spec: CardInput) -> _Field:
    read, expects = _READERS[spec.kind]
    to_tensor: Callable[[Any], Any]
    if spec.datatype in _FLOAT_TYPES:
        to_tensor = float
    elif spec.datatype == "BYTES":
        to_tensor = str
    elif spec.datatype == "BOOL":
        to_tensor = bool
    else:
        to_tensor = int
    return _Field(spec.name, spec.datatype, read, expects, to_tensor)


@dataclass(frozen=True, slots=True)
class InstanceDecoder:
    """Compiled once per config load from a model card."""

    fields: tuple[_Field, ...]
    allowed: frozenset[str]
    max_instances: int

    @classmethod
    def compile(cls, card: ModelCard, max_instances: int) -> InstanceDecoder:
        fields = tuple(_field(spec) for spec in card.inputs)
        allowed = {f.name for f in fields}
        if card.entity_key:
            allowed.add(card.entity_key)
        return cls(fields, frozenset(allowed), max_instances)

    def decode(self, doc: Any) -> tuple[list[dict[str, Any]], int]:
        """Return the OIP ``inputs`` list and the batch size, or raise :class:`InvalidInput`."""
        instances = doc.get("instances") if isinstance(doc, dict) else None
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("instances: required, a non-empty list of objects")
        if len(instances) > self.max_instances:
            raise InvalidInput(
                f"instances: {len(instances)} given, the maximum is {self.max_instances}"
            )
        columns: list[list[Any]] = [[] for _ in self.fields]
        problems: list[str] = []
        for row, instance in enumerate(instances):
            if not isinstance(instance, dict):
                problems.append(f"instances[{row}]: must be an object of named fields")
                continue
            unknown = sorted(k for k in instance if k not in self.allowed)
            if unknown:
                problems.append(
                    f"instances[{row}]: unknown field(s) {unknown}; allowed: {sorted(self.allowed)}"
                )
            for column, field in zip(columns, self.fields, strict=True):
                if field.name not in instance:
                    problems.append(f"instances[{row}].{field.name}: required field is missing")
                    continue
                value = field.read(instance[field.name])
                if value is None:
                    problems.append(
                        f"instances[{row}].{field.name}: must be {field.expects}, "
                        f"got {instance[field.name]!r}"
                    )
                    continue
                column.append(field.to_tensor(value))
        if problems:
            # Cap the message: a 10,000-row batch of wrong rows must not echo back megabytes.
            shown = problems[:20]
            more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise InvalidInput("; ".join(shown) + more)
        batch = len(instances)
        inputs = [
            {"name": f.name, "datatype": f.datatype, "shape": [batch, 1], "data": column}
            for f, column in zip(self.fields, columns, strict=True)
        ]
        return inputs, batch
