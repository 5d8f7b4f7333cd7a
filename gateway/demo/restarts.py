"""One part of the demo stack under supervision: noticed when it dies, restarted after a pause.

A part is ``running`` (healthy), ``stalled`` (SIGSTOPped on request), ``down`` (dead, its
restart scheduled) or ``starting`` (restarted, not healthy yet). A death is reported in
one line naming the part and how it ended; the rest of the stack is left alone, so the
gateway degrades as it would in production. The pause before a restart starts at
``RestartPolicy.delay_seconds`` and doubles, up to ``max_delay_seconds``, while the part
keeps dying soon after it started.

The clock is injected, and so is the health probe, so the policy is tested without sleeps::

    part = Part(child, RestartPolicy(), clock=fake_clock, report=lines.append)
    part.tick(probe)   # call often: notices a death, restarts when due, waits for health
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.demo.processes import Child, describe_exit

PartState = Literal["starting", "running", "stalled", "down"]
Action = Literal["kill", "stall", "heal"]


class FaultRefused(Exception):
    """A fault request that does not apply to the part as it is (killing a dead part)."""


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead part is started again.

    ``delay_seconds`` after its death (short: Feast alone takes ~10 s to start, so a part
    is back within ~15 s of a kill, degraded answers visible all along); doubled after each death that comes before the part
    was healthy for ``stable_seconds`` (a crash loop), up to ``max_delay_seconds``. A
    restarted part not healthy within ``startup_seconds`` counts as dead again.
    """

    delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    stable_seconds: float = 10.0
    startup_seconds: float = 120.0

    def next_delay(self, previous: float | None, healthy_for: float | None) -> float:
        """The pause before the next restart, given the last one and how long the part lived."""
        if previous is None or (healthy_for is not None and healthy_for >= self.stable_seconds):
            return self.delay_seconds
        return min(previous * 2, self.max_delay_seconds)


class Part:
    """A started, healthy :class:`Child` and what the supervisor knows of it."""

    def __init__(
        self,
        child: Child,
        policy: RestartPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] = print,
    ) -> None:
        self.child = child
        self.policy = policy
        self._clock = clock
        self._report = report
        self.state: PartState = "running"
        self.restarts = 0
        self._healthy_since: float | None = clock()
        self._delay: float | None = None
        self._died_at: float | None = None
        self._due: float = 0.0  # down: restart then; starting: healthy by then

    @property
    def name(self) -> str:
        return self.child.name

    def tick(self, probe: Callable[[Child], bool]) -> None:
        """Notice a death, restart when due, or see a restarted part become healthy."""
        now = self._clock()
        if self.state == "down":
            if now >= self._due:
                self._restart(now)
            return
        code = self.child.exited()
        if code is not None:
            self._died(now, describe_exit(code))
        elif self.state == "starting":
            if probe(self.child):
                self.state = "running"
                self._healthy_since = now
                since = (
                    "" if self._died_at is None else f", {now - self._died_at:.1f} s after it died"
                )
                self._report(f"{self.name} is back (pid {self.child.pid}{since})")
            elif now >= self._due:
                self._died(now, f"not healthy within {self.policy.startup_seconds:g} s")

    def apply(self, action: Action) -> str:
        """Carry out a fault request; return what was done, or raise :class:`FaultRefused`."""
        if action == "heal":
            return self._heal()
        if self.state == "down":
            raise FaultRefused(f"{self.name} is down already; it restarts {self._when()}")
        if action == "kill":
            self.child.signal_group(signal.SIGKILL)
            return f"{self.name}: sent SIGKILL to process group {self.child.pid}"
        self.child.signal_group(signal.SIGSTOP)
        self.state = "stalled"
        return (
            f"{self.name}: stalled (SIGSTOP to process group {self.child.pid}); "
            f"it accepts connections but answers nothing until healed"
        )

    def status(self) -> dict[str, object]:
        """The part as `gateway demo status` shows it."""
        doc: dict[str, object] = {
            "part": self.name,
            "state": self.state,
            "pid": self.child.pid,
            "restarts": self.restarts,
        }
        if self.state == "down":
            doc["restart_in_seconds"] = round(max(0.0, self._due - self._clock()), 1)
        return doc

    def _heal(self) -> str:
        if self.state == "down":
            self._restart(self._clock())
            return f"{self.name}: restarting now"
        self.child.signal_group(signal.SIGCONT)
        if self.state == "stalled":
            self.state = "running"
            return f"{self.name}: resumed (SIGCONT to process group {self.child.pid})"
        return f"{self.name}: {self.state}, nothing to heal (sent SIGCONT all the same)"

    def _died(self, now: float, how: str) -> None:
        # Whatever the leader left behind (gunicorn's orphaned workers) goes with it.
        self.child.put_down()
        healthy_for = None if self._healthy_since is None else now - self._healthy_since
        self._delay = self.policy.next_delay(self._delay, healthy_for)
        self.state = "down"
        self._died_at = now
        self._healthy_since = None
        self._due = now + self._delay
        self._report(
            f"{self.name} died ({how}); the rest keeps running; restarting it in "
            f"{self._delay:g} s (now: gateway demo fault heal {self.name})"
        )

    def _restart(self, now: float) -> None:
        self.restarts += 1
        self.state = "starting"
        self._due = now + self.policy.startup_seconds
        try:
            self.child.start()
        except OSError as exc:
            self._died(now, f"could not start: {exc}")

    def _when(self) -> str:
        return f"in {max(0.0, self._due - self._clock()):.1f} s"
