"""Signal handling shared by the servers the ``gateway`` command runs."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def signals_end_cleanly() -> Iterator[None]:
    """Make a signal-driven graceful shutdown a normal return (exit code 0).

    uvicorn re-raises the signal that stopped it once it has shut down, which would kill
    the process with that signal (or raise KeyboardInterrupt); a supervisor such as
    ``gateway demo`` or Kubernetes expects a clean exit after SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Swallow the re-raised signal; the server has already shut down."""
