"""A worker's place in a ``gateway serve --workers N`` fleet, read from its environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from gateway.settings.fleet import Fleet


def test_a_lone_process_is_a_fleet_of_one_without_supervisor_or_metric_files() -> None:
    assert Fleet.from_environ({}) == Fleet()
    # A stray folder setting alone does not make a fleet: one process stays as it was.
    assert Fleet.from_environ({"PROMETHEUS_MULTIPROC_DIR": "/tmp/m"}).metrics_dir is None
    assert Fleet().status() == {"pid": os.getpid(), "index": None, "workers": 1}
    assert not Fleet().ask_every_worker_to_reload()


def test_a_worker_reads_its_slot_the_supervisor_and_the_metrics_folder() -> None:
    fleet = Fleet.from_environ(
        {
            "GATEWAY_WORKERS": "2",
            "GATEWAY_WORKER_INDEX": "1",
            "GATEWAY_SUPERVISOR_PID": "41",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/m",
        }
    )
    assert fleet == Fleet(workers=2, index=1, supervisor_pid=41, metrics_dir="/tmp/m")
    assert fleet.status() == {"pid": os.getpid(), "index": 1, "workers": 2}


def test_a_worker_signals_only_a_supervisor_that_is_its_parent() -> None:
    """An orphaned worker must not signal whatever process now has the supervisor's pid."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fleet = Fleet(workers=2, index=0, supervisor_pid=stranger.pid)
        assert not fleet.ask_every_worker_to_reload()
        time.sleep(0.1)
        assert stranger.poll() is None  # not hung up on
    finally:
        stranger.kill()
        stranger.wait()


def test_a_worker_asks_its_supervisor_with_sighup() -> None:
    """This test process plays the supervisor of a child that asks for a reload."""
    received = threading.Event()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        received.set()

    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        asked = subprocess.run(
            [sys.executable, "-c",
             "import os; from gateway.settings.fleet import Fleet; "
             "print(Fleet(workers=2, index=0, supervisor_pid=os.getppid())"
             ".ask_every_worker_to_reload())"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert asked.stdout.strip() == "True"
        assert received.wait(5)
    finally:
        signal.signal(signal.SIGHUP, previous)
