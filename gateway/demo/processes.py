"""Child processes of the demo: start each in its own session, wait for health, stop whole.

Each child leads its own process group so stopping it also stops what it forked (Feast
runs gunicorn, which forks a worker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class DemoError(Exception):
    """A child could not be started or did not become healthy."""


@dataclass
class Child:
    name: str
    command: list[str]
    health_url: str
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with _health_client() as client:
            while time.monotonic() < deadline:
                code = self.exited()
                if code is not None:
                    raise DemoError(f"{self.name} exited with code {code}:\n{self.log_tail()}")
                if _answers_200(client, self.health_url):
                    return
                time.sleep(0.1)
        raise DemoError(
            f"{self.name} not healthy at {self.health_url} after {timeout:g} s:\n{self.log_tail()}"
        )

    def stop(self, grace: float) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left after ``grace``."""
        if self.process is None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # A forked grandchild may outlive its parent; make sure the group is gone.
        _signal_group(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _health_client() -> httpx.Client:
    # The children run on this machine, so a proxy from the environment could only misroute
    # the probe (urllib, used before, sent it to $HTTP_PROXY unless $NO_PROXY named the host).
    # Redirects are followed as urllib did.
    return httpx.Client(timeout=1.0, follow_redirects=True, trust_env=False)


def _answers_200(client: httpx.Client, url: str) -> bool:
    """True when ``url`` answers 200; an unreachable, slow or malformed URL is just not yet."""
    try:
        return client.get(url).status_code == 200
    except (httpx.HTTPError, httpx.InvalidURL, OSError):
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
