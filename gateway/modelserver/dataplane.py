"""The model server's decisions, apart from HTTP: metadata, readiness and inference.

The HTTP edge (``asgi.py``) parses paths and shapes responses; everything here takes
plain values and raises the errors of ``errors.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import __version__
from gateway.modelserver.card import ModelIdentity
from gateway.modelserver.errors import InjectedFault, ModelNotFound, ModelNotReady
from gateway.modelserver.faults import FaultInjector, corrupt
from gateway.modelserver.model import InferenceSession, OnnxModel
from gateway.modelserver.request import decode_infer_request
from gateway.modelserver.response import EncodedResponse, encode_infer_response

SERVER_NAME = "gateway-model-server"
EXTENSIONS = ("binary_tensor_data",)

Sleep = Callable[[float], Awaitable[Any]]
SessionFactory = Callable[[ModelIdentity], InferenceSession]


class DataPlane:
    """Serves one model; ``load``/``unload`` are called by the app's lifespan."""

    def __init__(
        self,
        identity: ModelIdentity,
        session_factory: SessionFactory,
        faults: FaultInjector,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.identity = identity
        self.faults = faults
        self._session_factory = session_factory
        self._sleep = sleep
        self._model: OnnxModel | None = None

    @property
    def ready(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Create the onnxruntime session (once, at startup)."""
        self._model = OnnxModel(self._session_factory(self.identity), self.identity.artifact)

    def unload(self) -> None:
        self._model = None

    def server_metadata(self) -> dict[str, object]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_ready(self, name: str, version: str | None) -> bool:
        self._check_model(name, version)
        return self.ready

    def model_metadata(self, name: str, version: str | None) -> dict[str, object]:
        model = self._loaded(name, version)
        identity = self.identity
        return {
            "name": identity.name,
            "versions": [identity.version] if identity.version is not None else [],
            "platform": identity.platform,
            "inputs": [spec.metadata() for spec in model.inputs],
            "outputs": [spec.metadata() for spec in model.outputs],
        }

    async def infer(
        self, name: str, version: str | None, body: bytes, header_length: int | None
    ) -> EncodedResponse:
        """Validate, run and encode one inference request, applying any fault."""
        model = self._loaded(name, version)
        request = decode_infer_request(body, header_length, model)
        fault = self.faults.draw()
        if fault == "slow":
            await self._sleep(self.faults.config.delay_ms / 1000.0)
        elif fault == "error":
            raise InjectedFault("injected fault")
        # Inline on the event loop: the demo models run in tens of microseconds, less than
        # a hop to a thread pool would cost.
        arrays = model.run(request.feeds, [output.spec.name for output in request.outputs])
        if fault != "normal":
            arrays = [corrupt(fault, array) for array in arrays]
        return encode_infer_response(
            self.identity.name,
            self.identity.version,
            request.id,
            list(zip(request.outputs, arrays, strict=True)),
        )

    def _check_model(self, name: str, version: str | None) -> None:
        if not self.identity.matches(name, version):
            what = f"model {name!r}" if version is None else f"model {name!r} version {version!r}"
            raise ModelNotFound(f"unknown {what}")

    def _loaded(self, name: str, version: str | None) -> OnnxModel:
        self._check_model(name, version)
        model = self._model
        if model is None:
            raise ModelNotReady(f"model {name!r} is not ready")
        return model
