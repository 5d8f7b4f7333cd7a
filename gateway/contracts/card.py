"""Model cards: the contract each model directory ships beside its ONNX artifact.

See ``docs/model-card.md`` for the file format. Cards are parsed into frozen objects
once per config load; nothing on the request path reads the file again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
FieldKind = Literal["float", "int", "bool", "category"]
FieldSource = Literal["feature", "request"]
Role = Literal["primary", "canary", "shadow", "fallback"]

CARD_FILE = "model-card.json"


class _Frozen(BaseModel):
    # Cards may carry more than the gateway reads (training notes, plots); ignore it.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ValueRange(_Frozen):
    min: float
    max: float


class Bounds(_Frozen):
    """Hard bounds from what a field means (an amount >= 0, an hour in 0-23); ``None``: open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Distribution(_Frozen):
    """Training values binned at their deciles, the baseline of the drift monitors.

    ``edges`` are the distinct training deciles, increasing; ``shares[i]`` is the share of
    training values in bin ``i``, where a value ``v`` falls in bin
    ``numpy.searchsorted(edges, v, side="right")`` (so bin 0 is ``v < edges[0]`` and the last
    bin ``v >= edges[-1]``). There is one more share than edges, and they sum to 1.
    """

    edges: tuple[float, ...] = Field(min_length=1)
    shares: tuple[float, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError(f"needs {len(self.edges) + 1} shares for {len(self.edges)} edges")
        if min(self.shares) < 0 or abs(sum(self.shares) - 1) > 1e-3:
            raise ValueError("shares must be >= 0 and sum to 1")
        return self


class InputStats(_Frozen):
    """Training statistics of one input (the descriptive figures are kept as given)."""

    mean: float | None = None
    std: float | None = None
    # Numeric kinds: the drift baseline. Category and bool kinds: each value's share.
    distribution: Distribution | None = None
    frequencies: dict[str, float] | None = None


class CardInput(_Frozen):
    """One model input, which is also one v1 field (or Feast feature) of the same name."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    kind: FieldKind
    source: FieldSource
    feature_ref: str | None = None
    # The values a real request can have: outside them a value is invalid (400).
    domain: Bounds | None = None
    # The values seen in training: outside them a value is unusual, served and flagged.
    range: ValueRange | None = None
    categories: tuple[str, ...] | None = None
    stats: InputStats | None = None
    default: float | int | bool | str | None = None


class CardOutput(_Frozen):
    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    meaning: str = ""
    # Every element is a probability in [0, 1]; the score output is one whenever it is FP.
    probabilities: bool = False
    # Each row (the last dimension) sums to 1, within 1e-3.
    rows_sum_to_one: bool = False
    # Servers send the same tensor as [N] or [N, 1] (MLServer's NumpyCodec: [N, 1] for a
    # 1-D output); both are accepted. "card": the client gets the card's shape (the
    # gateway reshapes the other form); "upstream": the shape as the server sent it.
    client_shape: Literal["card", "upstream"] = "card"


class ScoreSpec(_Frozen):
    """Where the score lives in the outputs, and how it becomes a label."""

    output: str
    index: int = Field(ge=0)
    threshold: float = 0.5
    labels: dict[str, str] = Field(default_factory=lambda: {"0": "negative", "1": "positive"})
    # The model's scores on its training rows: the score drift monitors' baseline.
    distribution: Distribution | None = None


class Artifact(_Frozen):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = None


class ModelCard(_Frozen):
    """The parsed ``model-card.json`` of one model directory."""

    name: str
    version: str
    role: Role
    platform: str = "onnx_onnxv1"
    description: str = ""
    artifact: Artifact
    entity_key: str | None = None
    inputs: tuple[CardInput, ...] = Field(min_length=1)
    outputs: tuple[CardOutput, ...] = Field(min_length=1)
    score: ScoreSpec

    def output(self, name: str) -> CardOutput | None:
        return next((o for o in self.outputs if o.name == name), None)


class CardError(Exception):
    """A card that cannot be read or does not describe its artifact; ``problems`` lists why."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path or '<card>'}: {msg}" for path, msg in problems))
        self.problems = problems


def load_card(model_dir: Path, *, verify_artifact: bool = False) -> ModelCard:
    """Read and validate ``model_dir/model-card.json``.

    With ``verify_artifact`` the artifact's sha256 is recomputed and must match the card.
    Raises :class:`CardError` with (key path inside the card, message) pairs.
    """
    path = model_dir / CARD_FILE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CardError([("", f"cannot read {path}: {exc.strerror or exc}")]) from exc
    try:
        card = ModelCard.model_validate_json(raw)
    except ValidationError as exc:
        raise CardError(
            [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        ) from exc
    problems: list[tuple[str, str]] = []
    if card.output(card.score.output) is None:
        problems.append(("score.output", f"names no output of the model: {card.score.output!r}"))
    if verify_artifact:
        problems.extend(_verify_artifact(model_dir, card.artifact))
    if problems:
        raise CardError(problems)
    return card


def _verify_artifact(model_dir: Path, artifact: Artifact) -> list[tuple[str, str]]:
    artifact_path = model_dir / artifact.path
    try:
        digest = hashlib.sha256(artifact_path.read_bytes()).hexdigest()
    except OSError as exc:
        return [("artifact.path", f"cannot read {artifact_path}: {exc.strerror or exc}")]
    if digest != artifact.sha256:
        return [
            ("artifact.sha256", f"{artifact_path} has sha256 {digest}, card says {artifact.sha256}")
        ]
    return []
