"""Command line and process entry points: ``serve``, ``add_arguments``, ``run_from_args``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from gateway.modelserver.app import create_app
from gateway.modelserver.asgi import ModelServerApp
from gateway.modelserver.errors import InvalidFaultConfig, ModelLoadError, ServerStartError
from gateway.modelserver.faults import FAULT_MODES, FaultConfig
from gateway.signals import signals_end_cleanly

#: How long in-flight requests (e.g. ``slow`` faults) may delay a shutdown.
GRACEFUL_SHUTDOWN_SECONDS = 5


def serve(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    fault: FaultConfig | None = None,
) -> None:
    """Serve ``model_dir`` over OIP v2 until SIGINT/SIGTERM, then shut down gracefully.

    Raises ``ModelLoadError`` when the directory cannot be served and
    ``ServerStartError`` when the address cannot be bound.
    """
    _run(create_app(model_dir, fault), host, port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``MODEL_DIR``, ``--host``, ``--port`` and the fault flags to ``parser``."""
    parser.add_argument(
        "model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="folder with model.onnx and (optionally) model-card.json",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind (default: %(default)s)"
    )
    faults = parser.add_argument_group("fault injection (test instrumentation)")
    faults.add_argument(
        "--fault-mode",
        choices=FAULT_MODES,
        default="normal",
        help="misbehave on purpose (default: %(default)s)",
    )
    faults.add_argument(
        "--fault-delay-ms",
        type=float,
        default=0.0,
        help="delay of the slow mode, in milliseconds (default: %(default)s)",
    )
    faults.add_argument(
        "--fault-rate",
        type=float,
        default=1.0,
        help="fraction of requests the fault applies to, in [0, 1] (default: %(default)s)",
    )
    faults.add_argument(
        "--fault-seed",
        type=int,
        default=0,
        help="seed of the per-request fault draw (default: %(default)s)",
    )
    faults.add_argument(
        "--no-debug-endpoints",
        action="store_true",
        help="do not serve /_debug/stats and /_debug/fault",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the server from parsed arguments; returns the process exit code.

    0 after a normal or signal-driven shutdown, 1 when the model cannot be served or the
    address cannot be bound, 2 for an invalid fault configuration. The reason goes to
    stderr.
    """
    try:
        fault = FaultConfig(
            mode=args.fault_mode,
            delay_ms=args.fault_delay_ms,
            rate=args.fault_rate,
            seed=args.fault_seed,
        )
        app = create_app(args.model_dir, fault, debug_endpoints=not args.no_debug_endpoints)
        _run(app, args.host, args.port)
    except (InvalidFaultConfig, ModelLoadError, ServerStartError) as exc:
        print(f"gateway model-server: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidFaultConfig) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway model-server",
        description="Serve one ONNX model directory over Open Inference Protocol v2 REST.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def _run(app: ModelServerApp, host: str, port: int) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        workers=1,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    with signals_end_cleanly():
        try:
            server.run()
        except SystemExit as exc:
            # uvicorn exits the process itself when startup fails; report it as an
            # error instead, so callers (and ``gateway model-server``) decide.
            if app.startup_error is not None:
                raise ModelLoadError(app.startup_error) from exc
            raise ServerStartError(f"cannot listen on {host}:{port} (see the log)") from exc
