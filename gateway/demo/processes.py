"""Child processes of the demo: start each in its own session, wait for health, stop whole.

Each child leads its own process group so stopping it also stops what it forked (Feast
runs gunicorn, which forks a worker). The group outlives its leader: a gunicorn master
killed alone leaves its workers in the group, still holding the port, so a dead child is
put down whole (:meth:`Child.put_down`) before it is started again.
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
        self.process = None  # a failed start must not leave the last, dead, pid to signal
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

    @property
    def pid(self) -> int | None:
        """The leader's pid, which is also the child's process group id."""
        return None if self.process is None else self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's whole process group (SIGSTOP stalls every process)."""
        if self.process is not None:
            _signal_group(self.process.pid, sig)

    def healthy(self, client: httpx.Client) -> bool:
        """One probe of the health URL: True when it answers 200."""
        return _answers_200(client, self.health_url)

    def put_down(self) -> None:
        """SIGKILL the whole group and reap the leader: nothing of the child holds its port."""
        if self.process is None:
            return
        _signal_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5.0)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with health_client() as client:
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
        # A stalled (SIGSTOPped) child acts on the SIGTERM only once it runs again.
        _signal_group(self.process.pid, signal.SIGCONT)
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


def describe_exit(code: int) -> str:
    """``"exit code 3"``, or ``"killed by SIGKILL"`` for Popen's negative return codes."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def health_client() -> httpx.Client:
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
