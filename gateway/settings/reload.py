"""Live reload of the routing file: watch, load whole, hand over or keep the running one.

The watcher polls a fingerprint of the file as the path resolves now: the real path
after following symlinks, its inode, size and modification time. That catches an
in-place write, an editor's save-by-rename (new inode) and a Kubernetes ConfigMap update
(the ``..data`` symlink is swapped, so the real path changes). Files the config reads
(``also_watch``: the API keys file a Secret mounts) are fingerprinted the same way, and a
change to any of them reloads the whole config. A change is loaded in a
thread (YAML parsing and card reading are blocking), validated whole, and passed to
``apply``; a refused file leaves the running config as it is and is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.settings.loader import ConfigError, LoadedConfig, load_config

log = logging.getLogger("gateway.reload")

Fingerprint = tuple[str, int, int, int, int]
Trigger = Literal["watch", "signal", "admin", "startup", "analysis"]


def fingerprint(path: Path) -> Fingerprint | None:
    """Identity of the file ``path`` resolves to now, or ``None`` while it is missing."""
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError:
        return None
    return (real, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass
class ReloadStatus:
    """What operators see at /admin/status."""

    loaded_at: float = field(default_factory=time.time)
    applied: int = 0
    rejected: int = 0
    last_error: list[str] | None = None
    last_trigger: Trigger = "startup"

    def as_dict(self) -> dict[str, object]:
        return {
            "loaded_at": self.loaded_at,
            "applied": self.applied,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "last_trigger": self.last_trigger,
        }


class ConfigReloader:
    """Loads ``path`` on change, on a signal or on request; calls ``apply`` with valid configs.

    ``apply`` must swap the running state atomically (one assignment): requests in flight
    keep the objects they started with.
    """

    def __init__(
        self,
        path: Path,
        apply: Callable[[LoadedConfig], None],
        interval: float = 0.5,
        on_result: Callable[[bool], None] | None = None,
        also_watch: Callable[[], Sequence[Path]] | None = None,
    ) -> None:
        self.path = path
        self.apply = apply
        self.interval = interval
        self.on_result = on_result
        self.also_watch = also_watch  # the running config's other files
        self.status = ReloadStatus()
        self._seen = self._fingerprints()
        self._lock = asyncio.Lock()

    async def reload(self, trigger: Trigger) -> bool:
        """Load and apply the file now; True when applied, False when refused."""
        async with self._lock:
            self._seen = self._fingerprints()
            self.status.last_trigger = trigger
            try:
                config = await asyncio.to_thread(load_config, self.path)
                self.apply(config)
            except ConfigError as exc:
                self.status.rejected += 1
                self.status.last_error = [str(p) for p in exc.problems]
                log.error("config reload (%s) refused; the running config stays:\n%s", trigger, exc)
                self._report(False)
                return False
            self.status.applied += 1
            self.status.loaded_at = time.time()
            self.status.last_error = None
            log.info("config reloaded (%s) from %s", trigger, self.path)
            self._report(True)
            return True

    def _fingerprints(self) -> tuple[Fingerprint | None, ...]:
        others = self.also_watch() if self.also_watch is not None else ()
        return (fingerprint(self.path), *(fingerprint(other) for other in others))

    def _report(self, ok: bool) -> None:
        if self.on_result is not None:
            self.on_result(ok)

    async def watch(self) -> None:
        """Poll until cancelled; reload whenever the fingerprint changes."""
        while True:
            await asyncio.sleep(self.interval)
            current = self._fingerprints()
            # A missing file is a rename in progress or a mistake: keep what runs.
            if None not in current and current != self._seen:
                await self.reload("watch")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.watch(), name="config-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
