"""The ONNX model behind the server: its tensor specs and the onnxruntime session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from gateway.modelserver.datatypes import OIP_TO_NUMPY, ORT_TO_OIP
from gateway.modelserver.errors import InferenceFailed, ModelLoadError


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input or output as OIP describes it; ``-1`` marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]

    def metadata(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class InferenceSession(Protocol):
    """The slice of ``onnxruntime.InferenceSession`` the server uses (the test seam)."""

    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...
    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray[Any, Any]]
    ) -> list[Any]: ...


def create_session(artifact: Path) -> InferenceSession:
    """Open ``artifact`` on the CPU with one intra-op and one inter-op thread.

    Several model servers share a 2-core machine in the demo; one thread each keeps them
    from fighting over cores, and the demo models are far too small to gain from more.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # Fatal only: a failed run is already answered with 500 and logged by the HTTP edge.
    options.log_severity_level = 4
    try:
        session: InferenceSession = ort.InferenceSession(
            str(artifact), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own pybind classes, not a common base
        raise ModelLoadError(f"{artifact}: onnxruntime cannot load the model: {exc}") from exc
    return session


class OnnxModel:
    """A loaded model: tensor specs taken from the session, and ``run``."""

    def __init__(self, session: InferenceSession, source: Path) -> None:
        self._session = session
        self.inputs = tuple(_spec(arg, "input", source) for arg in session.get_inputs())
        self.outputs = tuple(_spec(arg, "output", source) for arg in session.get_outputs())
        self.input_by_name = {spec.name: spec for spec in self.inputs}
        self.output_by_name = {spec.name: spec for spec in self.outputs}
        self.output_names = tuple(self.output_by_name)

    def run(
        self, feeds: Mapping[str, np.ndarray[Any, Any]], output_names: Sequence[str]
    ) -> list[np.ndarray[Any, Any]]:
        """Run the session; any onnxruntime error becomes ``InferenceFailed``."""
        try:
            return self._session.run(output_names, feeds)
        except Exception as exc:  # onnxruntime's Fail/InvalidArgument/... share no base
            raise InferenceFailed(f"inference failed: {_first_line(exc)}") from exc


def _spec(arg: Any, role: str, source: Path) -> TensorSpec:
    datatype = ORT_TO_OIP.get(arg.type)
    if datatype is None:
        raise ModelLoadError(f"{source}: {role} {arg.name!r} has unsupported type {arg.type}")
    # onnxruntime reports a dynamic dimension as a symbol name or None.
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape)
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape, dtype=OIP_TO_NUMPY[datatype])


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
