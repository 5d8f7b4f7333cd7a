"""``gateway demo``: the whole local stack on loopback, until Ctrl-C or SIGTERM.

Feast feature server (6566) over the bundled feature repo, model servers for fraud v1
(8001, primary), v2 (8002, canary) and v3 (8003, shadow), and the gateway (8080).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import orjson

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.demo.processes import Child, DemoError, port_in_use

FEAST_PORT = 6566
MODEL_PORTS = {"fraud-v1": 8001, "fraud-v2": 8002, "fraud-v3": 8003}
GATEWAY_PORT = 8080
STARTUP_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _children(workdir: Path, host: str, config: Path) -> list[Child]:
    from gateway.demo.feature_repo import feast_serve_command, prepare_feature_repo

    logs = workdir / "logs"
    print(f"preparing the feature repo in {workdir / 'feature_repo'} ...", flush=True)
    repo = prepare_feature_repo(workdir / "feature_repo")
    runtime_dir = workdir / "run"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    children = [
        Child(
            "feast",
            feast_serve_command(repo, host, FEAST_PORT),
            f"http://{host}:{FEAST_PORT}/health",
            logs / "feast.log",
            cwd=repo,
            # gunicorn opens a control socket under $XDG_RUNTIME_DIR (else $HOME/.gunicorn);
            # keep it inside the work folder.
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)},
        )
    ]
    for name, port in MODEL_PORTS.items():
        children.append(
            Child(
                name,
                [sys.executable, "-m", "gateway", "model-server", str(PROJECT_ROOT / "models" / name),
                 "--host", host, "--port", str(port)],
                f"http://{host}:{port}/v2/health/ready",
                logs / f"{name}.log",
            )
        )  # fmt: skip
    children.append(
        Child(
            "gateway",
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--host", host, "--port", str(GATEWAY_PORT)],
            f"http://{host}:{GATEWAY_PORT}/v2/health/ready",
            logs / "gateway.log",
            env={**os.environ, "GATEWAY_ADMIN_TOKEN": admin_token()},
        )
    )  # fmt: skip
    return children


def admin_token() -> str:
    """The demo gateway's admin token: ``$GATEWAY_ADMIN_TOKEN``, else a fixed demo value."""
    return os.environ.get("GATEWAY_ADMIN_TOKEN") or "demo-admin-token"


def _v2_sample() -> str:
    card = load_card(PROJECT_ROOT / "models" / "fraud-v1")
    return orjson.dumps(sample_infer_request(card, "demo-1")).decode()


def _samples(host: str) -> str:
    base = f"http://{host}:{GATEWAY_PORT}"
    v1 = (
        '{"instances": [{"customer_id": "c-0042", "amount": 120.5, '
        '"merchant_category": "grocery", "hour": 14, "is_foreign": false}]}'
    )
    return f"""
The demo stack is up. Try:

  curl -s {base}/v2/models/fraud
  curl -si {base}/v1/models/fraud:predict -H 'content-type: application/json' \\
       -d '{v1}'
  curl -si {base}/v2/models/fraud/infer -H 'content-type: application/json' -d @- <<'JSON'
{_v2_sample()}
JSON
  curl -s {base}/metrics | grep -E 'gateway_(requests|served_by|shadow)'
  curl -s {base}/admin/status -H 'Authorization: Bearer {admin_token()}'
  gateway rollout set-weight fraud 10      # then watch x-gateway-variant; rollback to undo

Logs are in the work folder's logs/. Ctrl-C (or SIGTERM) stops everything.
"""


def run_demo(workdir: Path, host: str = "127.0.0.1", config: Path | None = None) -> int:
    """Run the stack until a stop signal; 0 after a clean stop, 1 when something failed."""
    config = config or PROJECT_ROOT / "config" / "gateway.yaml"
    busy = [p for p in (FEAST_PORT, *MODEL_PORTS.values(), GATEWAY_PORT) if port_in_use(host, p)]
    if busy:
        print(
            f"gateway demo: port(s) {busy} on {host} are in use; stop what holds them",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    code = 0
    try:
        children = _children(workdir.resolve(), host, config.resolve())
        for child in children:
            if stop.is_set():
                break
            print(f"starting {child.name} ...", flush=True)
            child.start()
            child.wait_healthy(STARTUP_SECONDS)
        if not stop.is_set():
            print(_samples(host), flush=True)
        while not stop.wait(0.5):
            dead = [c for c in children if c.exited() is not None]
            if dead:
                raise DemoError(f"{dead[0].name} exited unexpectedly:\n{dead[0].log_tail()}")
    except DemoError as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("stopping the demo stack ...", flush=True)
        for child in reversed(children):
            child.stop(STOP_GRACE_SECONDS)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("demo stopped", flush=True)
    return code
