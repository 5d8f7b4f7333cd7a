"""A small Open Inference Protocol v2 REST server over onnxruntime for one model directory.

Used by the demo, the tests and small deployments (docs/model-server.md)::

    serve(Path("models/fraud-v1"), port=8001)              # blocks until SIGTERM
    app = create_app(Path("models/fraud-v1"))              # ASGI app, e.g. for TestClient

``add_arguments`` / ``run_from_args`` back the ``gateway model-server`` subcommand.
"""

from __future__ import annotations

from gateway.modelserver.app import create_app
from gateway.modelserver.cli import add_arguments, run_from_args, serve
from gateway.modelserver.errors import ModelLoadError, ServerStartError
from gateway.modelserver.faults import FAULT_MODES, FaultConfig, FaultMode

__all__ = [
    "FAULT_MODES",
    "FaultConfig",
    "FaultMode",
    "ModelLoadError",
    "ServerStartError",
    "add_arguments",
    "create_app",
    "run_from_args",
    "serve",
]
