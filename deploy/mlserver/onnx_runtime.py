"""An MLServer runtime that serves an ONNX model with onnxruntime.

MLServer 1.x ships no ONNX runtime (``mlserver-onnx`` stopped at 0.x), so this module is
one: inputs decoded by MLServer's ``NumpyCodec``, BYTES tensors handed to onnxruntime as
strings, outputs encoded by ``NumpyCodec`` (which is why a 1-D output such as the fraud
models' ``label`` goes out as ``[N, 1]``: MLServer adds the trailing dimension).

``model-settings.json`` beside it::

    {"name": "fraud", "implementation": "onnx_runtime.OnnxRuntime",
     "parameters": {"uri": "./model.onnx", "version": "1"}}

MLServer puts the folder of ``model-settings.json`` on ``sys.path``, so this file is
copied there (``docs/upstreams.md``). It runs in MLServer's virtualenv, not the gateway's.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    """One ONNX model on onnxruntime's CPU provider, one thread (MLServer runs the loop)."""

    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for request_input in payload.inputs:
            array = NumpyCodec.decode_input(request_input)
            if request_input.datatype == "BYTES":  # onnxruntime wants str, MLServer gives bytes
                array = np.vectorize(
                    lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object]
                )(array)
            feeds[request_input.name] = array
        # Every output, whatever ``outputs`` names, as MLServer's own runtimes answer: the
        # gateway checks them all and drops the ones its client did not ask for.
        try:
            results = self._session.run(self._outputs, feeds)
        except (ValueError, onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument) as exc:
            # A request onnxruntime refuses (a missing input, a wrong type or shape) is the
            # client's mistake: InferenceError answers 400 with the reason, not a 500.
            raise InferenceError(f"cannot run the model: {exc}") from exc
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, np.asarray(value))
                for name, value in zip(self._outputs, results, strict=True)
            ],
        )
