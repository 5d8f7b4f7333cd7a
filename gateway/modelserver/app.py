"""Assemble the model server's ASGI app from a model directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.modelserver.asgi import ModelServerApp
from gateway.modelserver.card import ModelIdentity, load_model_identity
from gateway.modelserver.dataplane import DataPlane, SessionFactory, Sleep
from gateway.modelserver.faults import FaultConfig, FaultInjector
from gateway.modelserver.model import InferenceSession, create_session
from gateway.modelserver.stats import DebugStats


def _onnxruntime_session(identity: ModelIdentity) -> InferenceSession:
    return create_session(identity.artifact)


def create_app(
    model_dir: Path,
    fault: FaultConfig | None = None,
    *,
    debug_endpoints: bool = True,
    sleep: Sleep = asyncio.sleep,
    session_factory: SessionFactory = _onnxruntime_session,
) -> ModelServerApp:
    """Build the ASGI app serving ``model_dir``; the model loads in the lifespan startup.

    The card and artifact are checked here, so a bad directory fails before any server
    starts (``ModelLoadError``). Until the lifespan has run, readiness answers 503.
    ``sleep`` and ``session_factory`` are seams for tests; ``debug_endpoints=False``
    removes ``/_debug/*``.
    """
    identity = load_model_identity(model_dir)
    plane = DataPlane(identity, session_factory, FaultInjector(fault or FaultConfig()), sleep)
    return ModelServerApp(plane, DebugStats(), debug_endpoints=debug_endpoints)
