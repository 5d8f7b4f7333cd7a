"""The running demo's control socket: ``<workdir>/run/control.sock``.

`gateway demo fault ...` and `gateway demo status` talk to the supervisor through it: one
JSON object per line each way, e.g. ``{"action": "stall", "part": "feast"}`` answered by
``{"ok": true, "message": "feast: stalled (...)"}`` or ``{"ok": false, "error": "..."}``.
The supervisor owns the parts, so it is the one that signals them: no pid file can go
stale. A connection thread hands each request to the supervisor's loop
(:meth:`ControlServer.answer`) and waits for the answer.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

SOCKET_NAME = "control.sock"
_MAX_REQUEST_BYTES = 4096
_ANSWER_SECONDS = 10.0
# sockaddr_un holds 108 bytes including the terminating NUL.
_MAX_PATH_BYTES = 107

Request = dict[str, Any]
Reply = dict[str, Any]


class DemoNotRunning(Exception):
    """Nothing answers on the work folder's control socket."""


class ControlError(Exception):
    """The control socket could not be opened, or its peer broke the protocol."""


def socket_path(workdir: Path) -> Path:
    return workdir / "run" / SOCKET_NAME


@dataclass
class _Pending:
    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    reply: Reply = field(default_factory=dict)


class ControlServer:
    """Listens on ``path`` in a thread; the owner answers requests with :meth:`answer`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: queue.Queue[_Pending] = queue.Queue()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ControlServer:
        if len(str(self.path).encode()) > _MAX_PATH_BYTES:
            raise ControlError(
                f"{self.path} is too long for a Unix socket; use a shorter --workdir"
            )
        if self.path.exists():
            if _listening(self.path):
                raise ControlError(f"another demo is running with this work folder ({self.path})")
            self.path.unlink()  # left by a demo that was killed
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(8)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="demo-control", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        while not self._pending.empty():  # nobody will answer these now
            pending = self._pending.get_nowait()
            pending.reply = {"ok": False, "error": "the demo is stopping"}
            pending.done.set()

    def answer(self, handle: Callable[[Request], Reply], timeout: float) -> None:
        """Wait up to ``timeout`` for requests; answer each with ``handle`` in this thread."""
        try:
            pending = self._pending.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            pending.reply = handle(pending.request)
            pending.done.set()
            try:
                pending = self._pending.get_nowait()
            except queue.Empty:
                return

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(_ANSWER_SECONDS)
            try:
                line = _read_line(connection)
                parsed = orjson.loads(line)
            except (OSError, orjson.JSONDecodeError, ControlError) as exc:
                reply: Reply = {"ok": False, "error": f"bad request: {exc}"}
            else:
                if isinstance(parsed, dict):
                    pending = _Pending(parsed)
                    self._pending.put(pending)
                    answered = pending.done.wait(_ANSWER_SECONDS)
                    reply = pending.reply if answered else {"ok": False, "error": "no answer"}
                else:
                    reply = {"ok": False, "error": "bad request: not a JSON object"}
            with contextlib.suppress(OSError):
                connection.sendall(orjson.dumps(reply) + b"\n")


def request(path: Path, message: Request, timeout: float = 15.0) -> Reply:
    """Send one request to the demo listening on ``path``; raise :class:`DemoNotRunning`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DemoNotRunning(str(path)) from exc
        except OSError as exc:
            raise ControlError(f"cannot reach the demo at {path}: {exc}") from exc
        try:
            sock.sendall(orjson.dumps(message) + b"\n")
            reply = orjson.loads(_read_line(sock))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ControlError(f"the demo at {path} did not answer: {exc}") from exc
    if not isinstance(reply, dict):
        raise ControlError(f"the demo at {path} answered {reply!r}")
    return reply


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(_MAX_REQUEST_BYTES)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST_BYTES * 16:
            raise ControlError("message too long")
    return data
