"""Running the gateway under uvicorn: one process, or several workers."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn

from gateway.api.dispatch import GatewayApp
from gateway.app import create_app
from gateway.http_protocol import CoalescingHttpToolsProtocol
from gateway.settings.loader import LoadedConfig, load_config
from gateway.signals import signals_end_cleanly

CONFIG_ENV = "GATEWAY_CONFIG"
DEFAULT_CONFIG = Path("config/gateway.yaml")

log = logging.getLogger("gateway")


# Net allocations between young-generation collections (CPython's default: 700).
GC_GEN0_THRESHOLD = 7_000


def settle_heap() -> None:
    """Freeze what startup built and collect the young generation less often.

    The models, config and libraries loaded at startup live as long as the process:
    frozen, no full collection walks them again. A prediction allocates hundreds of
    containers, so at CPython's default threshold a young collection ran every few
    requests. Together this measured about a tenth of the gateway's CPU per prediction
    (docs/architecture.md). Garbage without cycles is freed by reference counting as
    before; only cyclic garbage waits a little longer.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, middle, oldest)


def app_from_env() -> GatewayApp:
    """App factory for uvicorn workers: reads the config named by ``$GATEWAY_CONFIG``."""
    app = create_app(load_config(Path(os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG)))))
    settle_heap()
    return app


def uvicorn_options(config: LoadedConfig) -> dict[str, Any]:
    """How uvicorn runs the gateway (besides host and port); the tests' servers use it too."""
    return {
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "access_log": False,
        # The gateway reads no client address; uvicorn's X-Forwarded-* rewriting is skipped.
        "proxy_headers": False,
        "log_level": "info",
        "timeout_graceful_shutdown": config.settings.server.graceful_shutdown_seconds,
    }


def serve(config: LoadedConfig, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get the configured grace period."""
    common = {"host": host, "port": port, **uvicorn_options(config)}
    log.info("gateway on http://%s:%d serving %s", host, port, sorted(config.settings.models))
    with signals_end_cleanly():
        if workers > 1:
            # Each worker process builds its own app from the same file.
            os.environ[CONFIG_ENV] = str(config.source.resolve())
            uvicorn.run("gateway.server:app_from_env", factory=True, workers=workers, **common)
        else:
            app = create_app(config)
            settle_heap()
            uvicorn.run(app, **common)
