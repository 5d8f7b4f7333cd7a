"""Shadow traffic: sampled copies of served requests, sent off the response path.

``offer`` never waits and never raises: a sampled request goes into one bounded queue
and a few worker tasks send it to the shadow upstream, compare its scores with the ones
served, and forget it. When the queue is full the copy is dropped and counted, so a slow
or dead shadow can cost the client nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.contracts.outputs import ScoreReader, parse_answer
from gateway.errors import GatewayError
from gateway.resilience.breaker import CircuitBreaker
from gateway.routing.comparison import PairedComparison
from gateway.upstream.client import Upstream

log = logging.getLogger("gateway.shadow")

Send = Callable[[Upstream, bytes], Awaitable[bytes]]


@dataclass
class ShadowCounts:
    sent: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0
    compared: int = 0
    skipped_open: int = 0  # the shadow's breaker was open


@dataclass
class ShadowTarget:
    """One shadow upstream of one model, with its running comparison."""

    model: str
    upstream: Upstream
    sample_percent: float
    scores: ScoreReader
    comparison: PairedComparison = field(default_factory=PairedComparison)
    counts: ShadowCounts = field(default_factory=ShadowCounts)
    # Its own breaker: a failing shadow stops being called, and costs nothing.
    breaker: CircuitBreaker | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream.name,
            "sample_percent": self.sample_percent,
            "sent": self.counts.sent,
            "dropped": self.counts.dropped,
            "failed": self.counts.failed,
            "skipped_breaker_open": self.counts.skipped_open,
            "breaker": self.breaker.state if self.breaker else None,
            "comparison": self.comparison.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class _Job:
    target: ShadowTarget
    body: bytes
    served: list[float]
    batch: int


class ShadowDispatcher:
    """A bounded queue and ``concurrency`` workers shared by every shadow target."""

    def __init__(
        self,
        send: Send,
        *,
        queue_size: int = 256,
        concurrency: int = 4,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self._send = send
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._concurrency = concurrency
        self._random = random_source
        self._workers: list[asyncio.Task[None]] = []

    def offer(
        self, targets: tuple[ShadowTarget, ...], body: bytes, served: list[float], batch: int
    ) -> None:
        """Queue a copy for each target that samples this request; drop when full."""
        for target in targets:
            if target.sample_percent <= 0 or self._random() * 100.0 >= target.sample_percent:
                continue
            try:
                self._queue.put_nowait(_Job(target, body, served, batch))
            except asyncio.QueueFull:
                target.counts.dropped += 1

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._shadow(job)
            finally:
                self._queue.task_done()

    async def _shadow(self, job: _Job) -> None:
        target = job.target
        breaker = target.breaker
        if breaker is not None and not breaker.allows_call():
            target.counts.skipped_open += 1
            return
        target.counts.sent += 1
        name = target.upstream.name
        try:
            with breaker.calling() if breaker is not None else contextlib.nullcontext():
                answer = parse_answer(name, await self._send(target.upstream, job.body))
                shadow = [p["score"] for p in target.scores.predictions(name, answer, job.batch)]
            target.comparison.add(job.served, shadow)
            target.counts.compared += 1
        except (GatewayError, ValueError) as exc:
            target.counts.failed += 1
            log.debug("shadow %s failed: %s", name, exc)

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    async def drain(self) -> None:
        """Wait until every queued copy is handled (tests use this)."""
        await self._queue.join()
