"""A part of the demo under supervision: real child processes, a fake clock, a fake probe."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gateway.demo.processes import Child
from gateway.demo.restarts import FaultRefused, Part, RestartPolicy

# A leader that forks a worker into its own process group, as gunicorn does, and prints
# the worker's pid.
FORKING = """
import os, sys, time
pid = os.fork()
if pid:
    print(pid, flush=True)
time.sleep(60)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def part(tmp_path: Path, clock: Clock, lines: list[str]) -> Iterator[Part]:
    child = Child("feast", [sys.executable, "-c", FORKING], "http://unused", tmp_path / "f.log")
    child.start()
    supervised = Part(child, RestartPolicy(), clock=clock, report=lines.append)
    try:
        yield supervised
    finally:
        child.stop(grace=1.0)


def healthy(child: Child) -> bool:
    return True


def not_healthy(child: Child) -> bool:
    return False


def wait_exited(part: Part) -> None:
    deadline = time.monotonic() + 5
    while part.child.exited() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def worker_pid(part: Part) -> int:
    deadline = time.monotonic() + 5
    while not part.child.log_path.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return int(part.child.log_path.read_text().split()[-1])


def test_a_dead_leader_takes_its_group_down_and_is_restarted_after_the_pause(
    part: Part, clock: Clock, lines: list[str]
) -> None:
    worker = psutil.Process(worker_pid(part))
    first = part.child.pid
    assert first is not None
    psutil.Process(first).kill()  # the leader alone: its worker lives on, orphaned
    wait_exited(part)
    part.tick(healthy)
    assert lines == [
        "feast died (killed by SIGKILL); the rest keeps running; restarting it in 1 s "
        "(now: gateway demo fault heal feast)"
    ]
    worker.wait(timeout=5)  # put down with its leader
    assert part.status() == {
        "part": "feast", "state": "down", "pid": first, "restarts": 0,
        "restart_in_seconds": 1.0,
    }  # fmt: skip
    clock.now += 0.9
    part.tick(healthy)
    assert part.state == "down"
    clock.now += 0.1
    part.tick(healthy)
    assert (part.state, part.restarts) == ("starting", 1)
    assert part.child.pid != first
    clock.now += 2.5
    part.tick(healthy)
    assert part.state == "running"
    assert lines[-1] == f"feast is back (pid {part.child.pid}, 3.5 s after it died)"


def test_the_pause_doubles_while_the_part_keeps_dying_and_resets_once_it_is_stable(
    part: Part, clock: Clock, lines: list[str]
) -> None:
    pauses = []
    for lived in (0.0, 1.0, 2.0, 10.0):
        clock.now += lived
        part.apply("kill")
        wait_exited(part)
        part.tick(healthy)
        pauses.append(part.status()["restart_in_seconds"])
        clock.now += 60
        part.tick(healthy)  # restarted
        part.tick(healthy)  # healthy
        assert part.state == "running"
    assert pauses == [1.0, 2.0, 4.0, 1.0]


def test_a_restarted_part_never_healthy_counts_as_dead(
    part: Part, clock: Clock, lines: list[str]
) -> None:
    part.apply("kill")
    wait_exited(part)
    part.tick(healthy)
    clock.now += 1
    part.tick(not_healthy)
    assert part.state == "starting"
    clock.now += 120
    part.tick(not_healthy)
    assert part.state == "down"
    assert lines[-1].startswith("feast died (not healthy within 120 s); ")
    assert part.status()["restart_in_seconds"] == 2.0


def test_stall_stops_the_whole_group_and_heal_resumes_it(part: Part) -> None:
    worker = psutil.Process(worker_pid(part))
    leader = psutil.Process(part.child.pid or 0)
    assert part.apply("stall").startswith("feast: stalled (SIGSTOP to process group")
    for process in (leader, worker):
        assert wait_status(process, psutil.STATUS_STOPPED)
    assert part.state == "stalled"
    assert part.apply("heal").startswith("feast: resumed (SIGCONT")
    for process in (leader, worker):
        assert wait_status(process, psutil.STATUS_SLEEPING)
    assert part.state == "running"


def test_heal_restarts_a_dead_part_now_and_kill_refuses_it(
    part: Part, clock: Clock, lines: list[str]
) -> None:
    part.child.signal_group(signal.SIGKILL)
    wait_exited(part)
    part.tick(healthy)
    with pytest.raises(FaultRefused, match=r"feast is down already; it restarts in 1.0 s"):
        part.apply("kill")
    assert part.apply("heal") == "feast: restarting now"
    assert (part.state, part.restarts) == ("starting", 1)
    assert part.child.exited() is None


def wait_status(process: psutil.Process, status: str) -> bool:
    deadline = time.monotonic() + 5
    while process.status() != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
