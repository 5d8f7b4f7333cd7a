"""Real Feast processes and an HTTP relay for the enrichment tests.

``serve_feast`` runs ``feast serve`` over a prepared repo; a :class:`Relay` (a real HTTP
server in a thread) sits in front of a real server to record the bodies it forwards or to
delay its answers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from support import running

from gateway.demo.feature_repo import feast_serve_command

FEAST_START_SECONDS = 60.0
LOOKUP = {"features": ["customer_stats:avg_amount_30d"], "entities": {"customer_id": ["c-0001"]}}


@dataclass
class Feast:
    url: str
    port: int
    pid: int  # gunicorn's master; its child is the worker that answers


@contextlib.contextmanager
def serve_feast(
    repo: Path, port: int, *, max_requests: int | None = 0, workers: int = 1
) -> Iterator[Feast]:
    """``feast serve`` over ``repo`` on ``port`` until the block ends (``max_requests``
    None: Feast's default worker recycling)."""
    # gunicorn puts its control socket under $XDG_RUNTIME_DIR, else under $HOME.
    runtime_dir = repo.parent / f"run-{port}"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    url = f"http://127.0.0.1:{port}"
    command = feast_serve_command(
        repo, "127.0.0.1", port, max_requests=max_requests, workers=workers
    )
    with running(command, f"{url}/health", FEAST_START_SECONDS, env=env, cwd=repo.parent) as p:
        yield Feast(url, port, p.pid)


def warm_up(feast: Feast) -> None:
    """A fresh ``feast serve`` answers its first lookups slowly (the registry and the online
    store are opened lazily), slower than a gateway's lookup budget; tests about something
    else start after that."""
    for _ in range(20):
        httpx.post(f"{feast.url}/get-online-features", json=LOOKUP, timeout=30).raise_for_status()


def stagger(feast: Feast, lookups: int) -> None:
    """Send ``lookups`` over one kept-alive connection, so one worker alone counts them.

    Two workers started together and loaded evenly reach ``--max-requests`` in the same
    second and leave Feast with no worker until their replacements start: an outage the
    store's breaker must notice, not a blip to ride through. Half a lifetime apart, one
    answers while the other is replaced, as a long-running ``feast serve`` settles."""
    with httpx.Client(timeout=30) as one_connection:
        for _ in range(lookups):
            one_connection.post(f"{feast.url}/get-online-features", json=LOOKUP).raise_for_status()


class Relay:
    """Forwards POSTs to ``target``, recording each body, after ``delay`` seconds."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.delay = 0.0
        self.bodies: list[bytes] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                relay.bodies.append(body)
                time.sleep(relay.delay)
                request = urllib.request.Request(
                    relay.target + self.path,
                    data=body,
                    headers={"Content-Type": self.headers.get("content-type", "")},
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                with contextlib.suppress(OSError):  # the gateway may have given up already
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Relay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
