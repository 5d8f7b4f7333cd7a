"""``gateway demo``: the whole local stack on loopback, until Ctrl-C or SIGTERM.

Feast feature server (6566) over the bundled feature repo, model servers for fraud v1
(8001, primary), v2 (8002, canary) and v3 (8003, shadow), and the gateway (8080); every
port moved by ``--port-offset``. Once the stack is up, a part that dies is reported and
restarted after a pause while the rest keeps serving (``gateway/demo/restarts.py``), and
`gateway demo fault|status` reach the supervisor through its control socket
(``gateway/demo/control.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import get_args

import orjson

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.demo.control import ControlError, ControlServer, Reply, Request, socket_path
from gateway.demo.ports import (
    FEAST_PORT,
    GATEWAY_PORT,
    MODEL_PORTS,
    DemoPorts,
    shifted_config,
)
from gateway.demo.processes import Child, DemoError, health_client, port_in_use
from gateway.demo.restarts import Action, FaultRefused, Part, RestartPolicy

__all__ = ["FEAST_PORT", "GATEWAY_PORT", "MODEL_PORTS", "admin_token", "run_demo"]

STARTUP_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0
TICK_SECONDS = 0.2
DEFAULT_WORKDIR = Path(".demo")
_ACTIONS: dict[object, Action] = {action: action for action in get_args(Action)}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _children(workdir: Path, host: str, config: Path, ports: DemoPorts) -> list[Child]:
    from gateway.demo.feature_repo import feast_serve_command, prepare_feature_repo

    logs = workdir / "logs"
    print(f"preparing the feature repo in {workdir / 'feature_repo'} ...", flush=True)
    repo = prepare_feature_repo(workdir / "feature_repo")
    runtime_dir = workdir / "run"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    children = [
        Child(
            "feast",
            feast_serve_command(repo, host, ports.feast),
            f"http://{host}:{ports.feast}/health",
            logs / "feast.log",
            cwd=repo,
            # gunicorn opens a control socket under $XDG_RUNTIME_DIR (else $HOME/.gunicorn);
            # keep it inside the work folder.
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)},
        )
    ]
    for name, port in ports.models.items():
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
             "--host", host, "--port", str(ports.gateway)],
            f"http://{host}:{ports.gateway}/v2/health/ready",
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


def _samples(host: str, ports: DemoPorts, config: Path | None, workdir: Path) -> str:
    base = f"http://{host}:{ports.gateway}"
    v1 = (
        '{"instances": [{"customer_id": "c-0042", "amount": 120.5, '
        '"merchant_category": "grocery", "hour": 14, "is_foreign": false}]}'
    )
    rollout = "gateway rollout" if config is None else f"gateway rollout --config {config}"
    demo = "gateway demo" if workdir == DEFAULT_WORKDIR else f"gateway demo --workdir {workdir}"
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
  {rollout} set-weight fraud 10      # then watch x-gateway-variant; rollback to undo

The operator page, refreshed every 2 s: {base}/admin/ui (admin token: {admin_token()})

Break a part from a second terminal and repeat the v1 request: the gateway keeps
answering 200 and says how it degraded (x-gateway-degraded, x-gateway-feature-source,
x-gateway-variant). A dead part is restarted after a pause.

  {demo} fault kill feast       # SIGKILL Feast: cached features (feature-source: cache)
  {demo} fault stall fraud-v1   # SIGSTOP the primary: timeouts, then the fallback model
  {demo} fault heal fraud-v1    # SIGCONT it (a dead part: restart now)
  {demo} status                 # every part: state, pid, restarts

Logs are in {workdir / "logs"}. Ctrl-C (or SIGTERM) stops everything.
"""


def run_demo(
    workdir: Path,
    host: str = "127.0.0.1",
    config: Path | None = None,
    port_offset: int = 0,
    policy: RestartPolicy | None = None,
) -> int:
    """Run the stack until a stop signal; 0 after a clean stop, 1 when something failed."""
    ports = DemoPorts.shifted(port_offset)
    policy = policy or RestartPolicy(startup_seconds=STARTUP_SECONDS)
    busy = [p for p in ports.all() if port_in_use(host, p)]
    if busy:
        print(
            f"gateway demo: port(s) {busy} on {host} are in use; stop what holds them "
            "(or move the demo with --port-offset)",
            file=sys.stderr,
        )
        return 1
    # One line per health probe would bury the lines that matter (deaths, restarts).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    code = 0
    try:
        root = workdir.resolve()
        source = (config or PROJECT_ROOT / "config" / "gateway.yaml").resolve()
        shifted = (
            None if port_offset == 0 else shifted_config(source, root / "gateway.yaml", port_offset)
        )
        children = _children(root, host, shifted or source, ports)
        for child in children:
            if stop.is_set():
                break
            print(f"starting {child.name} ...", flush=True)
            child.start()
            child.wait_healthy(STARTUP_SECONDS)
        if not stop.is_set():
            with ControlServer(socket_path(root)) as control:
                print(_samples(host, ports, shifted, workdir), flush=True)
                _supervise([Part(c, policy, report=_report) for c in children], control, stop)
    except (DemoError, ControlError) as exc:
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


def _report(line: str) -> None:
    print(f"gateway demo: {line}", flush=True)


def _supervise(parts: list[Part], control: ControlServer, stop: threading.Event) -> None:
    """Until ``stop``: keep every part alive and answer the control socket's requests."""
    by_name = {part.name: part for part in parts}

    def handle(request: Request) -> Reply:
        action, name = request.get("action"), request.get("part")
        if action == "status":
            return {"ok": True, "parts": [part.status() for part in parts]}
        fault = _ACTIONS.get(action)
        if fault is None:
            return {"ok": False, "error": f"unknown action {action!r}"}
        part = by_name.get(str(name))
        if part is None:
            return {"ok": False, "error": f"unknown part {name!r}; parts: {', '.join(by_name)}"}
        try:
            message = part.apply(fault)
        except FaultRefused as exc:
            return {"ok": False, "error": str(exc)}
        _report(f"fault requested: {message}")
        return {"ok": True, "message": message}

    with health_client() as client:
        while not stop.is_set():
            control.answer(handle, TICK_SECONDS)
            for part in parts:
                part.tick(lambda child: child.healthy(client))
