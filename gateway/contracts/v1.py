"""The named-field (v1) API's instances, turned into the model's OIP input tensors.

``{"instances": [{"customer_id": "c-0042", "amount": 120.5, ...}]}`` becomes one
``[n, 1]`` tensor per card input, in the card's order, each element converted to the
input's datatype (a bool field of an FP32 input becomes 1.0 / 0.0).

When the model's features come from the feature store (``store_features``), an instance
carries only the entity key (required, a string) and the ``source: request`` fields; a
``source: feature`` field sent by the client is refused as an unknown field, so a caller
can never substitute a value the model trusts as the store's. The store's values join the
request's in :meth:`InstanceDecoder.tensors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.contracts.card import CardInput, ModelCard
from gateway.contracts.instance_rules import InstanceRules
from gateway.contracts.problems import ContractViolation, shown, violation

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings

_FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
# For a decoder built without a card's rules: JSON types only, unknown fields refused.
_DEFAULT_RULES = InstanceRules({}, {})


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


def field_reader(kind: str) -> Callable[[Any], Any]:
    """The reader of a field ``kind``: the value in the kind's JSON type, or ``None``."""
    return _READERS[kind][0]


@dataclass(frozen=True, slots=True)
class DecodedInstances:
    """Checked instances, column by column, before the feature store's values join them."""

    batch: int
    entity_ids: list[str]  # one per instance when the entity key is required, else empty
    columns: dict[str, list[Any]]  # decoded field name -> tensor values, one per instance


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

    fields: tuple[_Field, ...]  # every card input, in the card's order
    allowed: frozenset[str]
    max_instances: int
    # With store features: the fields read from instances, and the required entity key.
    request_fields: tuple[_Field, ...] = ()
    entity_key: str | None = None
    # Value rules, nullable defaults and the unknown-field policy (contracts/instance_rules).
    values: InstanceRules | None = None

    @classmethod
    def compile(
        cls,
        card: ModelCard,
        max_instances: int,
        store_features: bool = False,
        entity_key: str | None = None,
        contract: ContractSettings | None = None,
        max_json_depth: int = 32,
    ) -> InstanceDecoder:
        fields = tuple(_field(spec) for spec in card.inputs)
        key = entity_key or card.entity_key
        if store_features:
            names = {s.name for s in card.inputs if s.source == "request"}
            request = tuple(f for f in fields if f.name in names)
        else:
            request = fields
        allowed = {f.name for f in request}
        if key:
            allowed.add(key)
        return cls(
            fields,
            frozenset(allowed),
            max_instances,
            request,
            key if store_features else None,
            InstanceRules.compile(card, contract, max_json_depth),
        )

    def decode(self, doc: Any) -> tuple[list[dict[str, Any]], int]:
        """Return the OIP ``inputs`` list and the batch size, or raise :class:`InvalidInput`.

        Only for a decoder without store features: every input comes from the request.
        """
        decoded = self.decode_instances(doc)
        return self.tensors(decoded, {}), decoded.batch

    def decode_instances(self, doc: Any) -> DecodedInstances:
        """Check every instance; raise :class:`InvalidInput` naming each broken field."""
        instances = doc.get("instances") if isinstance(doc, dict) else None
        if not isinstance(instances, list) or not instances:
            raise ContractViolation([violation("instances", "instances", "instances",
                                               "required, a non-empty list of objects")])  # fmt: skip
        if len(instances) > self.max_instances:
            raise ContractViolation([violation("instances", "instances", "max_batch_size",
                                               f"{len(instances)} given, the maximum is {self.max_instances}")])  # fmt: skip
        checks = self.values or _DEFAULT_RULES
        fields = self.request_fields
        columns: list[list[Any]] = [[] for _ in fields]
        entity_ids: list[str] = []
        key = self.entity_key
        problems: list[str] = []
        for row, instance in enumerate(instances):
            if not isinstance(instance, dict):
                problems.append(violation(f"instances[{row}]", "instances", "instance",
                                          "must be an object of named fields", row))  # fmt: skip
                continue
            unknown = sorted(k for k in instance if k not in self.allowed)
            if unknown:
                problems.extend(checks.unknown_problems(row, instance, unknown, self.allowed))
            if key is not None:
                entity = instance.get(key)
                if isinstance(entity, str) and entity:
                    entity_ids.append(entity)
                    too_long = checks.entity_problem(row, key, entity)
                    if too_long:
                        problems.append(too_long)
                elif key not in instance:
                    problems.append(violation(f"instances[{row}].{key}", key, "missing_field",
                                              "required field is missing", row))  # fmt: skip
                else:
                    problems.append(violation(f"instances[{row}].{key}", key, "field_type",
                                              f"must be a non-empty string, got {shown(entity)}", row))  # fmt: skip
            for column, field in zip(columns, fields, strict=True):
                if field.name not in instance:
                    problems.append(violation(f"instances[{row}].{field.name}", field.name,
                                              "missing_field", "required field is missing", row))  # fmt: skip
                    continue
                raw = instance[field.name]
                value = field.read(raw)
                if value is None:
                    value = checks.impute(field.name, raw)
                if value is None:
                    problems.append(checks.type_problem(row, field.name, raw, field.expects))
                    continue
                column.append(field.to_tensor(value))
        named = {f.name: column for f, column in zip(fields, columns, strict=True)}
        problems.extend(checks.check_columns(named, len(instances)))
        if problems:
            # The message is capped: a 10,000-row batch of wrong rows must not echo megabytes.
            raise ContractViolation(problems)
        return DecodedInstances(len(instances), entity_ids, named)

    def store_tensors(self, features: Mapping[str, list[Any]], batch: int) -> list[dict[str, Any]]:
        """OIP tensors of the store's ``features`` (JSON-typed values), in the card's order."""
        return [
            {
                "name": f.name,
                "datatype": f.datatype,
                "shape": [batch, 1],
                "data": [f.to_tensor(v) for v in features[f.name]],
            }
            for f in self.fields
            if f.name in features
        ]

    def tensors(
        self, decoded: DecodedInstances, features: Mapping[str, list[Any]]
    ) -> list[dict[str, Any]]:
        """The OIP ``inputs`` in the card's order: request columns plus ``features``.

        ``features`` holds the store's values (in their fields' JSON types, one per
        instance) for every input the instances did not carry.
        """
        batch = decoded.batch
        inputs = []
        for f in self.fields:
            column = decoded.columns.get(f.name)
            if column is None:
                column = [f.to_tensor(v) for v in features[f.name]]
            inputs.append(
                {"name": f.name, "datatype": f.datatype, "shape": [batch, 1], "data": column}
            )
        return inputs
