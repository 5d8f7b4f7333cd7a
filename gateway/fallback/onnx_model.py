"""The fallback ONNX model, run in process on request-time inputs only.

Loaded once per config load: the card is read, the artifact's sha256 checked against the
config's (a mismatch refuses the config, see :mod:`gateway.settings.loader`), and one
onnxruntime session opened. A prediction takes the request-time columns by input name
(from a v2 request's tensors, or a v1 request's decoded fields) and answers an OIP v2
``outputs`` document checked against the fallback card's output contract, so a broken
fallback answer is never served.

    model = FallbackModel.load(Path("models/fraud-fallback"), run_in_thread=False)
    answer = model.predict({"amount": [12.0], "merchant_category": ["grocery"],
                            "hour": [14], "is_foreign": [0.0]}, batch=1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from gateway.contracts.card import CardInput, ModelCard, load_card
from gateway.contracts.output_check import OutputChecker
from gateway.errors import FallbackFailed

SERVED_BY = "fallback:onnx"

_NUMPY: Mapping[str, Any] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}


# onnxruntime's errors share no base class but Exception; they are translated here, at
# the boundary, so the ladder catches the gateway's own errors only.
_RUNTIME_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.RuntimeException,
    ort_errors.EngineError,
    ort_errors.NotImplemented,
    ort_errors.EPFail,
)


@dataclass(frozen=True, slots=True)
class _Input:
    name: str
    dtype: Any
    rank: int

    @classmethod
    def of(cls, spec: CardInput) -> _Input:
        return cls(spec.name, _NUMPY[spec.datatype], len(spec.shape))

    def array(self, values: Sequence[Any], batch: int) -> np.ndarray[Any, Any]:
        if len(values) != batch:
            raise FallbackFailed(f"input {self.name!r} has {len(values)} values for {batch} rows")
        try:
            array = np.asarray(values, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise FallbackFailed(f"input {self.name!r}: {exc}") from exc
        return array.reshape((batch, 1) if self.rank == 2 else (batch,))


class FallbackModel:
    """One fallback model: its card, its onnxruntime session and its output check."""

    def __init__(
        self, card: ModelCard, session: ort.InferenceSession, *, run_in_thread: bool
    ) -> None:
        self.card = card
        self.run_in_thread = run_in_thread
        self._session = session
        self._inputs = tuple(_Input.of(spec) for spec in card.inputs)
        self.input_names = tuple(i.name for i in self._inputs)
        self._outputs = tuple(o.name for o in card.outputs)
        self._datatypes = {o.name: o.datatype for o in card.outputs}
        self._checker = OutputChecker.compile(card)

    @classmethod
    def load(cls, model_dir: Path, *, run_in_thread: bool) -> FallbackModel:
        """Read the card (verifying the artifact's sha256) and open the session once."""
        card = load_card(model_dir, verify_artifact=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        session = ort.InferenceSession(
            str(model_dir / card.artifact.path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        return cls(card, session, run_in_thread=run_in_thread)

    def predict(
        self,
        columns: Mapping[str, Sequence[Any]],
        batch: int,
        requested: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """An OIP answer for ``batch`` rows; ``columns`` maps input names to row values.

        Raises :class:`FallbackFailed` for a missing or unusable input or a runtime failure,
        and ``OutputViolation`` when the model's own answer breaks its output contract.
        """
        feeds = {}
        for spec in self._inputs:
            values = columns.get(spec.name)
            if values is None:
                raise FallbackFailed(f"the request has no input {spec.name!r}")
            feeds[spec.name] = spec.array(values, batch)
        wanted = [n for n in self._outputs if requested is None or n in requested]
        try:
            results = self._session.run(wanted, feeds)
        except _RUNTIME_ERRORS as exc:
            raise FallbackFailed(f"onnxruntime: {exc}") from exc
        outputs = [
            {
                "name": name,
                "datatype": self._datatypes[name],
                "shape": list(result.shape),
                "data": result.reshape(-1).tolist(),
            }
            for name, result in zip(wanted, results, strict=True)
        ]
        answer = {
            "model_name": self.card.name,
            "model_version": self.card.version,
            "outputs": outputs,
        }
        self._checker.check(SERVED_BY, answer, batch, wanted)
        return answer


def columns_from_v2(doc: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """The tensors named ``names`` of a (checked) OIP request, each flattened to its rows."""
    tensors = {t.get("name"): t for t in doc.get("inputs", ()) if isinstance(t, dict)}
    columns: dict[str, list[Any]] = {}
    for name in names:
        tensor = tensors.get(name)
        if tensor is None:
            raise FallbackFailed(f"the request has no input {name!r}")
        data = tensor.get("data")
        while isinstance(data, list) and data and isinstance(data[0], list):
            data = [x for row in data for x in row]
        if not isinstance(data, list):
            raise FallbackFailed(f"input {name!r} has no data list")
        columns[name] = data
    return columns
