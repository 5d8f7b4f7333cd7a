"""Structural checks of OIP v2 infer requests against a model card.

These run before anything is forwarded: a request that fails them never reaches a model
server. Messages name the input, the rule and what is allowed, e.g.
``inputs[1] 'amount': datatype 'FP64' does not match the model's 'FP32'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

from gateway.contracts.card import CardInput, ModelCard
from gateway.errors import InvalidInput

DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
     "FP16", "FP32", "FP64", "BYTES"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class InferChecker:
    """The checks for one model, compiled from its card once per config load."""

    inputs: dict[str, CardInput]
    outputs: frozenset[str]
    max_batch: int

    @classmethod
    def compile(cls, card: ModelCard, max_batch: int) -> InferChecker:
        return cls(
            inputs={i.name: i for i in card.inputs},
            outputs=frozenset(o.name for o in card.outputs),
            max_batch=max_batch,
        )

    def check(self, doc: Any) -> int:
        """Raise :class:`InvalidInput` unless ``doc`` is a valid request; return its batch size."""
        if not isinstance(doc, dict):
            raise InvalidInput("body: must be a JSON object with an 'inputs' list")
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InvalidInput("inputs: required, a non-empty list of tensors")
        problems: list[str] = []
        seen: set[str] = set()
        batch: int | None = None
        for index, tensor in enumerate(inputs):
            rows = self._check_tensor(index, tensor, seen, problems)
            if rows is not None:
                if batch is not None and rows != batch:
                    problems.append(
                        f"inputs[{index}]: batch size {rows} differs from the first input's {batch}"
                    )
                batch = rows if batch is None else batch
        missing = [name for name in self.inputs if name not in seen]
        if missing:
            problems.append(f"inputs: missing {missing}; the model needs {list(self.inputs)}")
        problems.extend(self._check_outputs(doc.get("outputs")))
        if problems:
            raise InvalidInput("; ".join(problems))
        assert batch is not None  # at least one input passed, or problems were raised
        if batch > self.max_batch:
            raise InvalidInput(f"inputs: batch size {batch} exceeds the maximum {self.max_batch}")
        return batch

    def _check_tensor(
        self, index: int, tensor: Any, seen: set[str], problems: list[str]
    ) -> int | None:
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict):
            problems.append(f"{where}: must be an object with name, shape, datatype and data")
            return None
        name = tensor.get("name")
        if not isinstance(name, str):
            problems.append(f"{where}.name: required, a string")
            return None
        where = f"{where} {name!r}"
        expected = self.inputs.get(name)
        if expected is None:
            problems.append(f"{where}: unknown input; the model's inputs are {list(self.inputs)}")
            return None
        if name in seen:
            problems.append(f"{where}: given more than once")
            return None
        seen.add(name)
        datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
        if datatype not in DATATYPES:
            problems.append(f"{where}.datatype: {datatype!r} is not an OIP datatype")
            return None
        if datatype != expected.datatype:
            problems.append(
                f"{where}.datatype: {datatype!r} does not match the model's {expected.datatype!r}"
            )
            return None
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            problems.append(f"{where}.shape: must be a non-empty list of non-negative integers")
            return None
        if len(shape) != len(expected.shape) or any(
            want not in (-1, got) for want, got in zip(expected.shape, shape, strict=True)
        ):
            problems.append(
                f"{where}.shape: {shape} does not fit the model's {list(expected.shape)} (-1: any size)"
            )
            return None
        if not isinstance(data, list):
            problems.append(f"{where}.data: required, a list")
            return None
        count = _count_elements(data)
        if count < 0:
            problems.append(f"{where}.data: nested lists are not rectangular")
            return None
        if count != prod(shape):
            problems.append(
                f"{where}.data: holds {count} elements, shape {shape} needs {prod(shape)}"
            )
            return None
        return int(shape[0])

    def _check_outputs(self, outputs: Any) -> list[str]:
        if outputs is None:
            return []
        if not isinstance(outputs, list):
            return ['outputs: must be a list of {"name": ...} objects']
        problems = []
        for index, output in enumerate(outputs):
            name = output.get("name") if isinstance(output, dict) else None
            if name not in self.outputs:
                problems.append(
                    f"outputs[{index}]: {name!r} is not an output of the model; "
                    f"it has {sorted(self.outputs)}"
                )
        return problems


def _count_elements(data: list[Any]) -> int:
    """Elements in flat or nested row-major ``data``; -1 when nesting is ragged."""
    if not data or not isinstance(data[0], list):
        return -1 if any(isinstance(item, list) for item in data) else len(data)
    counts = [_count_elements(item) if isinstance(item, list) else -1 for item in data]
    if -1 in counts or len(set(counts)) != 1:
        return -1
    return counts[0] * len(data)
