"""Reading a model server's answer: the minimum every answer must satisfy to be served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.contracts.card import ModelCard
from gateway.errors import UpstreamBadResponse


def parse_answer(upstream: str, payload: bytes) -> dict[str, Any]:
    """Decode an OIP infer answer; it must be an object with an ``outputs`` list."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise UpstreamBadResponse(upstream, f"answer is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        raise UpstreamBadResponse(upstream, "answer has no 'outputs' list")
    return doc


@dataclass(frozen=True, slots=True)
class ScoreReader:
    """Pulls the per-row score and label out of an answer, as the card's ``score`` says."""

    output: str
    index: int
    threshold: float
    labels: tuple[str, str]

    @classmethod
    def compile(cls, card: ModelCard) -> ScoreReader:
        spec = card.score
        return cls(
            spec.output,
            spec.index,
            spec.threshold,
            (spec.labels.get("0", "0"), spec.labels.get("1", "1")),
        )

    def predictions(self, upstream: str, doc: dict[str, Any], batch: int) -> list[dict[str, Any]]:
        """``[{"score": p, "label": name}, ...]``, one per row, or raise UpstreamBadResponse."""
        tensor = next(
            (o for o in doc["outputs"] if isinstance(o, dict) and o.get("name") == self.output),
            None,
        )
        if tensor is None:
            raise UpstreamBadResponse(upstream, f"answer lacks the output {self.output!r}")
        data, shape = tensor.get("data"), tensor.get("shape")
        if not isinstance(data, list) or not isinstance(shape, list) or not shape:
            raise UpstreamBadResponse(upstream, f"output {self.output!r} has no data or shape")
        if data and isinstance(data[0], list):
            data = [x for row in data for x in row]
        width = len(data) // batch if batch else 0
        if shape[0] != batch or width * batch != len(data) or self.index >= width:
            raise UpstreamBadResponse(
                upstream,
                f"output {self.output!r} has shape {shape} for a batch of {batch}",
            )
        scores = data[self.index :: width]
        if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
            raise UpstreamBadResponse(upstream, f"output {self.output!r} holds non-numbers")
        negative, positive = self.labels
        return [
            {"score": float(s), "label": positive if s >= self.threshold else negative}
            for s in scores
        ]
