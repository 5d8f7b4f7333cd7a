"""The static default answer: the configured score for every row, labelled by the card.

Compiled once per config load into an OIP answer template shaped like the model's: the
score output holds ``[1 - score, score]`` per row (or the score at the card's index), an
integer label output holds the label index the card's threshold gives.

    >>> # score 0.05 with threshold 0.5 -> probabilities [0.95, 0.05], label 0 ("legit")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.contracts.card import ModelCard

SERVED_BY = "fallback:default"
_INTEGER = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


@dataclass(frozen=True, slots=True)
class DefaultAnswer:
    score: float
    label: str
    # (name, datatype, width or 0 for a rank-1 output, one row's values)
    _outputs: tuple[tuple[str, str, int, tuple[float | int, ...]], ...]

    @classmethod
    def compile(cls, card: ModelCard, score: float) -> DefaultAnswer:
        spec = card.score
        positive = score >= spec.threshold
        label = spec.labels.get("1" if positive else "0", "1" if positive else "0")
        outputs: list[tuple[str, str, int, tuple[float | int, ...]]] = []
        for out in card.outputs:
            if out.name == spec.output:
                width = out.shape[-1] if len(out.shape) > 1 and out.shape[-1] > 0 else 2
                row = [0.0] * max(width, spec.index + 1)
                if len(row) == 2:
                    row[1 - spec.index] = 1.0 - score
                row[spec.index] = score
                outputs.append((out.name, out.datatype, len(row), tuple(row)))
            elif out.datatype in _INTEGER and len(out.shape) == 1:
                outputs.append((out.name, out.datatype, 0, (int(positive),)))
        return cls(score, label, tuple(outputs))

    def answer(self, batch: int, requested: tuple[str, ...] | None = None) -> dict[str, Any]:
        outputs = []
        for name, datatype, width, row in self._outputs:
            if requested is not None and name not in requested:
                continue
            shape = [batch, width] if width else [batch]
            outputs.append(
                {"name": name, "datatype": datatype, "shape": shape, "data": list(row) * batch}
            )
        return {"model_name": "default", "model_version": "default", "outputs": outputs}
