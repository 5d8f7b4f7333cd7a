"""Running the gateway under uvicorn: one process, or a fleet of N worker processes.

A fleet (``gateway serve --workers N``) is uvicorn's multiprocess supervisor with three
changes (:class:`FleetSupervisor`), so the N workers behave as one gateway:

- metrics: before any worker is spawned the supervisor points ``PROMETHEUS_MULTIPROC_DIR``
  at a folder (the operator's, else a fresh temporary one), emptied of metric files at
  start and at exit (a temporary one is removed). prometheus-client chooses its value
  class at import, so each worker, a fresh interpreter, writes its values there from its
  first metric on, and ``/metrics`` on any worker renders all of them
  (:mod:`gateway.telemetry.fleet_metrics`). When a worker dies the supervisor calls
  ``mark_process_dead`` for it before starting its replacement: uvicorn has no hook for
  this, so :meth:`FleetSupervisor.keep_subprocess_alive` is uvicorn 0.54's own loop with
  that call added (a worker the supervisor stops on exit needs none: the folder goes).
- reload: SIGHUP to the supervisor is forwarded to every ready worker, which reloads the
  file in place, whole or not at all, keeping its breakers, caches and windows. (uvicorn
  itself answers SIGHUP by replacing every worker with a new process, which loses that
  state and re-reads the model files.) ``POST /admin/reload`` on one worker asks the
  supervisor for the same; each worker's file watcher polls the file on its own.
- identity: each worker is told N, its slot (0..N-1, kept by a replacement) and the
  supervisor's pid (:class:`gateway.settings.fleet.Fleet`); ``/admin/status`` shows them.

A single process (``--workers 1``, the default) has none of this: no folder, no files, no
supervisor, the app built here and served by ``uvicorn.run`` as before.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from gateway.api.dispatch import GatewayApp
from gateway.app import create_app
from gateway.http_protocol import CoalescingHttpToolsProtocol
from gateway.settings.fleet import INDEX_ENV, METRICS_DIR_ENV, SUPERVISOR_ENV, WORKERS_ENV, Fleet
from gateway.settings.loader import LoadedConfig, load_config
from gateway.signals import signals_end_cleanly

CONFIG_ENV = "GATEWAY_CONFIG"
LOG_LEVEL_ENV = "GATEWAY_LOG_LEVEL"
DEFAULT_CONFIG = Path("config/gateway.yaml")

log = logging.getLogger("gateway")


# Net allocations between young-generation collections (CPython's default: 700).
GC_GEN0_THRESHOLD = 7_000


def settle_heap() -> None:
    """Freeze what startup built and collect the young generation less often.

    The models, config and libraries loaded at startup live as long as the process:
    frozen, no full collection walks them again. A prediction allocates hundreds of
    containers, so at CPython's default threshold a young collection ran every few
    requests. Together this measured about a tenth of the gateway's CPU per prediction
    (docs/architecture.md). Garbage without cycles is freed by reference counting as
    before; only cyclic garbage waits a little longer.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, middle, oldest)


def app_from_env() -> GatewayApp:
    """App factory for uvicorn workers: reads the config named by ``$GATEWAY_CONFIG``."""
    fleet = Fleet.from_environ(os.environ)
    if not logging.getLogger().handlers:  # a spawned worker: the CLI set up the supervisor's
        logging.basicConfig(
            level=os.environ.get(LOG_LEVEL_ENV, "INFO"),
            format=f"%(asctime)s %(levelname)s %(name)s[worker {fleet.index}]: %(message)s",
        )
    config = load_config(Path(os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG))))
    app = create_app(config, fleet=fleet)
    settle_heap()
    return app


def uvicorn_options(config: LoadedConfig) -> dict[str, Any]:
    """How uvicorn runs the gateway (besides host and port); the tests' servers use it too."""
    return {
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "access_log": False,
        # The gateway reads no client address; uvicorn's X-Forwarded-* rewriting is skipped.
        "proxy_headers": False,
        "log_level": "info",
        "timeout_graceful_shutdown": config.settings.server.graceful_shutdown_seconds,
    }


def serve(config: LoadedConfig, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get the configured grace period."""
    common = {"host": host, "port": port, **uvicorn_options(config)}
    log.info("gateway on http://%s:%d serving %s", host, port, sorted(config.settings.models))
    with signals_end_cleanly():
        if workers > 1:
            serve_fleet(config, workers, common)
        else:
            app = create_app(config)
            settle_heap()
            uvicorn.run(app, **common)


def serve_fleet(config: LoadedConfig, workers: int, options: dict[str, Any]) -> None:
    """Run ``workers`` processes on one socket until SIGINT/SIGTERM (see the module doc)."""
    with metrics_directory(os.environ.get(METRICS_DIR_ENV)) as metrics_dir:
        # Spawned workers inherit the environment as it is when each one starts; every
        # worker builds its own app from the same file.
        os.environ.update(
            {
                CONFIG_ENV: str(config.source.resolve()),
                WORKERS_ENV: str(workers),
                SUPERVISOR_ENV: str(os.getpid()),
                METRICS_DIR_ENV: metrics_dir,
                LOG_LEVEL_ENV: logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            }
        )
        log.info("%d workers; metrics of every worker in %s", workers, metrics_dir)
        uvicorn_config = uvicorn.Config(
            "gateway.server:app_from_env", factory=True, workers=workers, **options
        )
        socket = uvicorn_config.bind_socket()
        try:
            FleetSupervisor(uvicorn_config, [socket], metrics_dir).run()
        finally:
            socket.close()


@contextlib.contextmanager
def metrics_directory(chosen: str | None) -> Iterator[str]:
    """The folder for the workers' metric files: ``chosen`` (created if missing) or a new
    temporary one; no metric file survives from an earlier run or outlives this one."""
    if not chosen:
        path = tempfile.mkdtemp(prefix="gateway-metrics-")
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
        return
    folder = Path(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_metric_files(folder)
    try:
        yield str(folder)
    finally:
        _remove_metric_files(folder)


def _remove_metric_files(folder: Path) -> None:
    """prometheus-client's files only (``counter_<pid>.db``, ``gauge_livemax_<pid>.db``...)."""
    for path in folder.glob("*.db"):
        path.unlink(missing_ok=True)


class FleetSupervisor(Multiprocess):
    """uvicorn's worker supervisor, made a fleet: see the module docstring.

    Worker slots are fixed: SIGTTIN/SIGTTOU (uvicorn: one worker more or fewer) are
    refused, since every worker was told how many there are.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[Any], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def spawn(self, index: int) -> Process:
        os.environ[INDEX_ENV] = str(index)  # read by the new worker only
        process = Process(self.config, self.sockets)
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self.spawn(index) for index in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        """uvicorn 0.54's loop, plus ``mark_process_dead`` and the slot of a replacement."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung, or gone already
            process.join()
            if process.pid is not None:
                # Drops its live* gauge files; its counters stay in the sums.
                mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving: the app is broken and would fail again.
                log.error("worker %d [%s] failed to start; stopping", index, process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("worker %d [%s] died; starting a new one in its slot", index, process.pid)
            self.processes[index] = self.spawn(index)

    def handle_hup(self) -> None:
        """Forward SIGHUP to every worker that has started: each reloads the file in place.

        A worker still starting is skipped (before its app's lifespan SIGHUP would kill
        it); it loads the file as it starts, and its watcher polls the file from then on.
        """
        log.info("SIGHUP: every worker reloads the config")
        for process in self.processes:
            if process.pid is not None and process.is_ready(timeout=1):
                os.kill(process.pid, signal.SIGHUP)

    def handle_ttin(self) -> None:
        log.warning("SIGTTIN ignored: the number of workers is fixed by --workers")

    def handle_ttou(self) -> None:
        log.warning("SIGTTOU ignored: the number of workers is fixed by --workers")
