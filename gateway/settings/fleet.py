"""This process's place in a ``gateway serve --workers N`` fleet, as the supervisor tells it.

The supervisor (:mod:`gateway.server`) starts N worker processes and tells each, through
its environment, how many workers there are, which slot it fills, the supervisor's pid
and the folder where prometheus-client's multiprocess mode keeps every worker's metric
values. A single-process gateway has the default :class:`Fleet`: one worker, no slot, no
supervisor, no folder, and nothing about it changes.

=========================== =========================================================
``GATEWAY_WORKERS``         how many workers the supervisor keeps running (N)
``GATEWAY_WORKER_INDEX``    this worker's slot, 0..N-1; a restarted worker keeps it
``GATEWAY_SUPERVISOR_PID``  the supervisor, which forwards SIGHUP to every worker
``PROMETHEUS_MULTIPROC_DIR`` the metric files' folder; prometheus-client reads it once,
                            at import, so it is set before a worker is spawned
=========================== =========================================================

Example: ``Fleet.from_environ({"GATEWAY_WORKERS": "2", "GATEWAY_WORKER_INDEX": "1",
"GATEWAY_SUPERVISOR_PID": "41", "PROMETHEUS_MULTIPROC_DIR": "/tmp/m"})`` is worker 1 of 2.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

WORKERS_ENV = "GATEWAY_WORKERS"
INDEX_ENV = "GATEWAY_WORKER_INDEX"
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class Fleet:
    """How many workers serve this port, and which one this process is."""

    workers: int = 1
    index: int | None = None
    supervisor_pid: int | None = None
    # Set only with several workers: then /metrics reads every worker's files from it.
    metrics_dir: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Fleet:
        """The fleet the supervisor described; a lone process without those variables."""
        workers = int(environ.get(WORKERS_ENV, "1"))
        if workers <= 1:
            return cls()
        index = environ.get(INDEX_ENV)
        supervisor = environ.get(SUPERVISOR_ENV)
        return cls(
            workers=workers,
            index=int(index) if index is not None else None,
            supervisor_pid=int(supervisor) if supervisor is not None else None,
            metrics_dir=environ.get(METRICS_DIR_ENV) or None,
        )

    def status(self) -> dict[str, object]:
        """Which worker answers, for ``/admin/status``: ``{"pid", "index", "workers"}``."""
        return {"pid": os.getpid(), "index": self.index, "workers": self.workers}

    def ask_every_worker_to_reload(self) -> bool:
        """Ask the supervisor to forward SIGHUP to every worker; False when there is none.

        The check on the parent's pid keeps a worker orphaned by a killed supervisor from
        signalling whatever process took over as its parent.
        """
        if self.supervisor_pid is None or os.getppid() != self.supervisor_pid:
            return False
        os.kill(self.supervisor_pid, signal.SIGHUP)
        return True
