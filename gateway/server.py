"""Running the gateway under uvicorn: one process, or several workers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings.loader import LoadedConfig, load_config
from gateway.signals import signals_end_cleanly

CONFIG_ENV = "GATEWAY_CONFIG"
DEFAULT_CONFIG = Path("config/gateway.yaml")

log = logging.getLogger("gateway")


def app_from_env() -> Starlette:
    """App factory for uvicorn workers: reads the config named by ``$GATEWAY_CONFIG``."""
    return create_app(load_config(Path(os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG)))))


def serve(config: LoadedConfig, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get the configured grace period."""
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "info",
        "timeout_graceful_shutdown": config.settings.server.graceful_shutdown_seconds,
    }
    log.info("gateway on http://%s:%d serving %s", host, port, sorted(config.settings.models))
    with signals_end_cleanly():
        if workers > 1:
            # Each worker process builds its own app from the same file.
            os.environ[CONFIG_ENV] = str(config.source.resolve())
            uvicorn.run("gateway.server:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
        else:
            uvicorn.run(create_app(config), **common)  # type: ignore[arg-type]
