"""OIP v2 infer request checks, compiled from a model card (and its configured contract).

Everything here is decided before a request is forwarded: a request that fails never
reaches a model server. Messages name the input, the row, the rule and what is allowed,
e.g. ``inputs[1] 'amount'.datatype: 'FP64' does not match the model's 'FP32' (rule:
datatype_mismatch)``; every problem found is reported in one :class:`ContractViolation`.

Structure rules: ``body``, ``inputs``, ``tensor``, ``name``, ``unknown_input``,
``duplicate_input``, ``missing_input``, ``datatype``, ``datatype_mismatch``, ``shape``,
``element_count``, ``ragged``, ``batch_mismatch``, ``max_batch_size``, ``outputs``,
``unknown_output``, ``id``, ``parameters``, ``json_depth``; the element and value rules
are :mod:`gateway.contracts.values`'.

A binary tensor (Triton's extension) reaches the checks decoded by
:mod:`gateway.wire.binary`: its ``data`` is a flat numpy array, checked with vectorised
passes (:meth:`~gateway.contracts.values.ValueRule.passes_array`), never turned into a
Python list unless a rule fails and the message must name the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from math import prod
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from gateway.contracts.card import ModelCard
from gateway.contracts.problems import ContractViolation, shown, violation
from gateway.contracts.values import ValueRule, compile_rule, default_contract, too_deep
from gateway.wire.binary import OIP_TO_NUMPY

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings

DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
     "FP16", "FP32", "FP64", "BYTES"}
)  # fmt: skip

#: Request datatype -> model datatypes it converts to exactly (``datatype_conversion: safe``).
SAFE_CONVERSIONS: Final[dict[str, frozenset[str]]] = {
    "INT8": frozenset({"INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}),
    "INT16": frozenset({"INT32", "INT64", "FP32", "FP64"}),
    "INT32": frozenset({"INT64", "FP64"}),
    "UINT8": frozenset({"UINT16", "UINT32", "UINT64", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}),
    "UINT16": frozenset({"UINT32", "UINT64", "INT32", "INT64", "FP32", "FP64"}),
    "UINT32": frozenset({"UINT64", "INT64", "FP64"}),
    "FP16": frozenset({"FP32", "FP64"}),
    "FP32": frozenset({"FP64"}),
}  # fmt: skip
_REQUEST_KEYS: Final = frozenset({"id", "parameters", "inputs", "outputs"})
_TENSOR_KEYS: Final = frozenset({"name", "shape", "datatype", "parameters", "data"})
_SCALARS: Final = frozenset({str, int, float, bool})
_LIST: Final = {list}
_INT: Final = {int}
_PLAIN_TENSOR_KEYS: Final = _TENSOR_KEYS - {"parameters"}


@dataclass(frozen=True, slots=True)
class _Input:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: ValueRule
    accepts: frozenset[str]  # request datatypes relabelled to ``datatype`` (safe conversion)
    fixed: tuple[tuple[int, int], ...]  # (dimension, size) of every dimension that is not -1


@dataclass(frozen=True, slots=True)
class InferChecker:
    """The checks for one model, compiled from its card once per config load."""

    inputs: dict[str, _Input]
    outputs: frozenset[str]
    max_batch: int
    max_depth: int = 32
    max_string_length: int = 256
    # The request's parameters may name one entity per row under this key as a list of
    # strings (feature enrichment, gateway/contracts/oip_entities.py).
    entity_key: str | None = None

    @property
    def fields(self) -> frozenset[str]:
        """The model's input names: the bounded ``field`` labels of its rejections."""
        return frozenset(self.inputs)

    @classmethod
    def compile(
        cls,
        card: ModelCard,
        max_batch: int,
        contract: ContractSettings | None = None,
        max_json_depth: int = 32,
        store_features: bool = False,
    ) -> InferChecker:
        """The checks of ``card``'s inputs; with ``store_features`` only its request-time
        inputs, for requests whose feature tensors the store adds after the check."""
        contract = contract or default_contract()
        inputs = {}
        for spec in card.inputs:
            if store_features and spec.source != "request":
                continue
            configured = contract.ranges.get(spec.name)
            accepts = frozenset(
                source
                for source, targets in SAFE_CONVERSIONS.items()
                if contract.datatype_conversion == "safe" and spec.datatype in targets
            )
            inputs[spec.name] = _Input(
                spec.name,
                spec.datatype,
                spec.shape,
                compile_rule(
                    spec,
                    bounds=(configured.min, configured.max) if configured else None,
                    categories=contract.categories.get(spec.name),
                    allow_nan=contract.allow_nan,
                    nullable=spec.name in contract.nullable,
                    max_string_length=contract.max_string_length,
                ),
                accepts,
                tuple((i, n) for i, n in enumerate(spec.shape) if n != -1),
            )
        return cls(
            inputs=inputs,
            outputs=frozenset(o.name for o in card.outputs),
            max_batch=max_batch,
            max_depth=max_json_depth,
            max_string_length=contract.max_string_length,
            entity_key=card.entity_key,
        )

    def check(self, doc: Any) -> int:
        """Raise :class:`ContractViolation` unless ``doc`` is a valid request; return its batch."""
        return self.check_converting(doc)[0]

    def check_converting(self, doc: Any) -> tuple[int, bool]:
        """As :meth:`check`; also relabel safely convertible datatypes to the model's, in
        place, and say whether it did (the body must then be re-serialized)."""
        if not isinstance(doc, dict):
            raise ContractViolation([violation("body", "body", "body",
                                               "must be a JSON object with an 'inputs' list")])  # fmt: skip
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise ContractViolation([violation("inputs", "inputs", "inputs",
                                               "required, a non-empty list of tensors")])  # fmt: skip
        problems: list[str] = []
        seen: set[str] = set()
        batch: int | None = None
        converted = False
        for index, tensor in enumerate(inputs):
            rows = self._check_tensor(index, tensor, seen, problems)
            if rows is None:
                continue
            if rows < 0:
                converted, rows = True, -rows - 1
            if batch is not None and rows != batch:
                problems.append(violation(f"inputs[{index}]", tensor["name"], "batch_mismatch",
                                          f"batch size {rows} differs from the first input's {batch}"))  # fmt: skip
            batch = rows if batch is None else batch
        missing = [name for name in self.inputs if name not in seen]
        for name in missing:
            problems.append(violation("inputs", name, "missing_input",
                                      f"missing [{name!r}]; the model needs {list(self.inputs)}"))  # fmt: skip
        self._check_envelope(doc, problems)
        if problems:
            raise ContractViolation(problems)
        assert batch is not None  # at least one input passed, or problems were raised
        if batch > self.max_batch:
            raise ContractViolation([violation("inputs", "inputs", "max_batch_size",
                                               f"batch size {batch} exceeds the maximum {self.max_batch}")])  # fmt: skip
        return batch, converted

    def _check_tensor(
        self, index: int, tensor: Any, seen: set[str], problems: list[str]
    ) -> int | None:
        """The tensor's batch size (``-rows - 1`` when its datatype was relabelled), or None.

        Locations are formatted only when a rule fails: this runs for every input of
        every request.
        """
        if type(tensor) is not dict:
            problems.append(violation(f"inputs[{index}]", "inputs", "tensor",
                                      "must be an object with name, shape, datatype and data"))  # fmt: skip
            return None
        name = tensor.get("name")
        if type(name) is not str:
            problems.append(violation(f"inputs[{index}].name", "inputs", "name", "required, a string"))  # fmt: skip
            return None
        expected = self.inputs.get(name)
        if expected is None:
            problems.append(violation(_at(index, name), "inputs", "unknown_input",
                                      f"unknown input; the model's inputs are {list(self.inputs)}"))  # fmt: skip
            return None
        if name in seen:
            problems.append(violation(_at(index, name), name, "duplicate_input", "given more than once"))  # fmt: skip
            return None
        seen.add(name)
        datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
        if type(datatype) is not str or datatype not in DATATYPES:
            problems.append(violation(f"{_at(index, name)}.datatype", name, "datatype",
                                      f"{shown(datatype)} is not an OIP datatype; allowed: {sorted(DATATYPES)}"))  # fmt: skip
            return None
        relabel = datatype != expected.datatype
        if relabel and datatype not in expected.accepts:
            allowed = [expected.datatype, *sorted(expected.accepts)]
            problems.append(violation(f"{_at(index, name)}.datatype", name, "datatype_mismatch",
                                      f"{datatype!r} does not match the model's {expected.datatype!r}; allowed: {allowed}"))  # fmt: skip
            return None
        if type(shape) is not list or not shape or set(map(type, shape)) != _INT or min(shape) < 0:
            problems.append(violation(f"{_at(index, name)}.shape", name, "shape",
                                      "must be a non-empty list of non-negative integers"))  # fmt: skip
            return None
        fits = len(shape) == len(expected.shape)
        for dimension, size in expected.fixed if fits else ():
            if shape[dimension] != size:
                fits = False
                break
        if not fits:
            problems.append(violation(f"{_at(index, name)}.shape", name, "shape",
                                      f"{shape} does not fit the model's {list(expected.shape)} (-1: any size)"))  # fmt: skip
            return None
        if type(data) is np.ndarray:  # a binary tensor, decoded (gateway.wire.binary)
            return self._check_array(index, tensor, data, shape, expected, relabel, problems)
        if type(data) is not list:
            problems.append(violation(f"{_at(index, name)}.data", name, "tensor", "required, a list"))  # fmt: skip
            return None
        if data and type(data[0]) is list:
            data = _flatten(data, len(shape))
            if data is None:
                problems.append(violation(f"{_at(index, name)}.data", name, "ragged",
                                          f"nested lists are not rectangular for shape {shape}"))  # fmt: skip
                return None
        size = shape[0] if len(shape) == 1 else prod(shape)
        if len(data) != size:
            problems.append(violation(f"{_at(index, name)}.data", name, "element_count",
                                      f"holds {len(data)} elements, shape {shape} needs {size}"))  # fmt: skip
            return None
        rule = expected.values
        if not rule.passes(data):
            rows = shape[0]
            problems.extend(
                rule.explain(
                    data, f"{_at(index, name)} row {{row}}", len(data) // rows if rows else 1
                )
            )
        if len(tensor) > 4 and not tensor.keys() <= _PLAIN_TENSOR_KEYS:
            self._check_extras(tensor, _TENSOR_KEYS, _at(index, name), name, 4, problems)
        batch: int = shape[0]
        if relabel:
            tensor["datatype"] = expected.datatype
            return -batch - 1
        return batch

    def _check_array(
        self,
        index: int,
        tensor: dict[str, Any],
        data: np.ndarray[Any, Any],
        shape: list[int],
        expected: _Input,
        relabel: bool,
        problems: list[str],
    ) -> int | None:
        """:meth:`_check_tensor`'s element checks for the flat array of a binary tensor."""
        name = expected.name
        size = prod(shape)
        if data.size != size:
            problems.append(violation(f"{_at(index, name)}.data", name, "element_count",
                                      f"holds {data.size} elements, shape {shape} needs {size}"))  # fmt: skip
            return None
        rule = expected.values
        if not rule.passes_array(data):
            rows = shape[0]
            problems.extend(
                rule.explain(
                    data.tolist(), f"{_at(index, name)} row {{row}}", size // rows if rows else 1
                )
            )
        if len(tensor) > 4 and not tensor.keys() <= _PLAIN_TENSOR_KEYS:
            self._check_extras(tensor, _TENSOR_KEYS, _at(index, name), name, 4, problems)
        batch: int = shape[0]
        if relabel:
            tensor["datatype"] = expected.datatype
            tensor["data"] = data.astype(OIP_TO_NUMPY[expected.datatype])
            return -batch - 1
        return batch

    def _check_envelope(self, doc: dict[str, Any], problems: list[str]) -> None:
        """``id``, ``parameters``, ``outputs`` and anything else at the top level."""
        if "id" in doc:
            rid = doc["id"]
            if type(rid) is not str or len(rid) > self.max_string_length:
                problems.append(violation("id", "id", "id",
                                          f"must be a string of at most {self.max_string_length} characters"))  # fmt: skip
        outputs = doc.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, list):
                problems.append(violation("outputs", "outputs", "outputs",
                                          'must be a list of {"name": ...} objects'))  # fmt: skip
            else:
                for index, output in enumerate(outputs):
                    name = output.get("name") if isinstance(output, dict) else None
                    if type(name) is not str or name not in self.outputs:
                        problems.append(violation(f"outputs[{index}]", "outputs", "unknown_output",
                                                  f"{shown(name)} is not an output of the model; it has {sorted(self.outputs)}"))  # fmt: skip
                    else:
                        self._check_extras(output, frozenset({"name", "parameters"}),
                                           f"outputs[{index}]", "outputs", 4, problems)  # fmt: skip
        if len(doc) > 1 and not doc.keys() <= {"inputs", "id"}:
            self._check_extras(doc, _REQUEST_KEYS, "body", "body", 2, problems)

    def _check_extras(
        self,
        obj: dict[str, Any],
        known: frozenset[str],
        where: str,
        field: str,
        depth: int,
        problems: list[str],
    ) -> None:
        """``parameters`` holds scalars only; unknown keys may not nest past ``max_depth``."""
        params = obj.get("parameters")
        if (
            params is not None
            and (not isinstance(params, dict) or not set(map(type, params.values())) <= _SCALARS)
            and not _entity_list_only(params, self.entity_key if field == "body" else None)
        ):
            problems.append(violation(f"{where}.parameters", field, "parameters",
                                      "must be an object of string, number or boolean values"))  # fmt: skip
        for key, value in obj.items():
            if key not in known and too_deep(value, self.max_depth - depth):
                problems.append(violation(f"{where}.{key[:64]}", field, "json_depth",
                                          f"nested deeper than the limit of {self.max_depth}"))  # fmt: skip


def _at(index: int, name: str) -> str:
    """Where an input's problem is: ``inputs[2] 'amount'`` (long names cut)."""
    return f"inputs[{index}] {name[:64]!r}"


def _entity_list_only(params: Any, entity_key: str | None) -> bool:
    """True when the only non-scalar parameter is ``entity_key`` holding a list of strings."""
    if entity_key is None or not isinstance(params, dict):
        return False
    ids = params.get(entity_key)
    if not isinstance(ids, list) or set(map(type, ids)) - {str}:
        return False
    return set(type(v) for k, v in params.items() if k != entity_key) <= _SCALARS


def _flatten(data: list[Any], rank: int) -> list[Any] | None:
    """Row-major elements of nested ``data`` (``data[0]`` is a list); None when ragged.

    One level at a time with C-level ``set``/``map``/``chain``: lists left at the bottom
    (nesting deeper than the rank) fail the element check later.
    """
    while data and type(data[0]) is list:
        if rank <= 1 or set(map(type, data)) != _LIST or len(set(map(len, data))) != 1:
            return None
        data = list(chain.from_iterable(data))
        rank -= 1
    return data
