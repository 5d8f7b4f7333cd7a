"""The ``gateway`` console script."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__
from gateway.settings.loader import ConfigError, load_config

DEFAULT_CONFIG = "config/gateway.yaml"


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    server = config.settings.server
    serve(config, args.host or server.host, args.port or server.port, args.workers)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.path))
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} error(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    models = ", ".join(sorted(config.settings.models))
    print(f"{args.path}: ok ({len(config.settings.models)} model(s): {models})")
    return 0


def _model_server(args: argparse.Namespace) -> int:
    from gateway.modelserver import run_from_args

    return run_from_args(args)


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo.commands import run_from_args

    return run_from_args(args)


def _rollout(args: argparse.Namespace) -> int:
    from gateway.rollout.commands import run_from_args

    return run_from_args(args)


def _hash_key(args: argparse.Namespace) -> int:
    """Print the SHA-256 of the key on stdin (one line; surrounding whitespace dropped)."""
    key = sys.stdin.buffer.read().strip()
    if not key:
        print("no key on stdin", file=sys.stderr)
        return 1
    print(hashlib.sha256(key).hexdigest())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A resilient model-serving gateway (Open Inference Protocol v2 and v1 APIs).",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway until Ctrl-C or SIGTERM. With --workers N, N processes "
        "share the port as one gateway: one /metrics scrape covers every worker (metric files "
        "in $PROMETHEUS_MULTIPROC_DIR if set, else a temporary folder; emptied at start and "
        "exit), SIGHUP to this process or POST /admin/reload has every worker reload the "
        "config in place, and /admin/status names the worker that answered (docs/fleet.md).",
    )
    serve.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"routing YAML (default: {DEFAULT_CONFIG})"
    )
    serve.add_argument("--host", help="address to bind (default: server.host in the config)")
    serve.add_argument("--port", type=int, help="port (default: server.port in the config, 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: 1: a single process, no metric files)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="run the whole local demo stack",
        description="Start Feast (6566), model servers for fraud v1/v2/v3 (8001-8003) and the "
        "gateway (8080) on loopback; a part that dies is restarted while the rest keeps "
        "serving; stop them all on Ctrl-C or SIGTERM. From another terminal, `gateway demo "
        "fault kill|stall|heal PART` breaks a part and `gateway demo status` shows them.",
    )
    from gateway.demo.commands import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    demo.set_defaults(run=_demo)

    model_server = commands.add_parser(
        "model-server",
        help="serve one ONNX model directory over OIP v2",
        description="Serve one model directory (model.onnx + model-card.json) over the Open "
        "Inference Protocol v2 REST API.",
    )
    from gateway.modelserver import add_arguments

    add_arguments(model_server)
    model_server.set_defaults(run=_model_server)

    rollout = commands.add_parser(
        "rollout",
        help="canary rollout: status, set-weight, promote, rollback, start, pause, resume, abort",
        description="Edit a model's canary in the routing YAML in place (comments kept), "
        "validated and written atomically; every change is appended to the audit log.",
    )
    from gateway.rollout.commands import add_arguments as add_rollout_arguments

    add_rollout_arguments(rollout)
    rollout.set_defaults(run=_rollout)

    auth = commands.add_parser(
        "auth",
        help="predict API keys: hash-key",
        description="Helpers for the predict API keys of the auth: section (docs/auth.md).",
    )
    auth_commands = auth.add_subparsers(dest="auth_command", required=True, metavar="COMMAND")
    hash_key = auth_commands.add_parser(
        "hash-key",
        help="print the sha256 of a key read from stdin",
        description="Read one API key from stdin and print its SHA-256 (hex), the value for "
        "auth.api_keys[].sha256. Example: openssl rand -hex 32 | tee key | gateway auth hash-key",
    )
    hash_key.set_defaults(run=_hash_key)

    check = commands.add_parser(
        "check-config",
        help="validate a config file",
        description="Validate a config; exit 0, or exit 1 listing every error with its key path.",
    )
    check.add_argument("path", help="the YAML file to check")
    check.set_defaults(run=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
