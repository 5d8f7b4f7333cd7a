"""A file copy of the last-known-good cache, so a restarted gateway is not all defaults.

The gateway writes the cache to ``feature_store.cache.snapshot.path`` every
``interval_seconds`` and on shutdown, and loads it at start. The file is one JSON document
(orjson)::

    {"version": 1, "written_at": 1795645859.0,
     "entries": [["c-0042", "customer_stats:txn_count_7d", 4, 1795645800.0], ...]}

Each value keeps its event time, so the per-feature max-age budget still decides whether it
may be served: a snapshot never makes an old value look fresh. Loading is bounded by the
cache's size (the newest values win) and skips values older than the cache's horizon. A
missing file is a cold start; an unreadable or malformed one is an empty cache and a
warning, never a failed start. Writes go to a temporary file renamed over the old one, so
a crash mid-write leaves the previous snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.features.cache import LastKnownGood

log = logging.getLogger("gateway.features")
VERSION = 1
Entry = tuple[str, str, Any, float]  # entity, feature ref, value, event time


@dataclass(frozen=True, slots=True)
class Loaded:
    entries: int  # values put in the cache
    skipped: int  # too old for the horizon, or beyond the cache's size
    written_at: float | None  # when the snapshot was written (None: no snapshot read)


def encode(entries: list[Entry], written_at: float) -> bytes:
    return orjson.dumps({"version": VERSION, "written_at": written_at, "entries": entries})


def write(path: Path, entries: list[Entry], written_at: float) -> None:
    """Write ``entries`` atomically (a temporary file, then a rename); raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(encode(entries, written_at))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _entries(doc: Any) -> list[Entry]:
    """The entries of a snapshot document; ``ValueError`` when it is not one."""
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} snapshot")
    raw = doc.get("entries")
    if not isinstance(raw, list):
        raise ValueError("entries is not a list")
    out: list[Entry] = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 4
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
            or isinstance(item[3], bool)
            or not isinstance(item[3], int | float)
        ):
            raise ValueError(f"malformed entry {str(item)[:80]}")
        out.append((item[0], item[1], item[2], float(item[3])))
    return out


def load(path: Path, cache: LastKnownGood, now: float, horizon: float) -> Loaded:
    """Put the snapshot's values into ``cache``: the newest first, at most its size, none
    older than ``horizon`` seconds; a bad file loads nothing and logs why."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Loaded(0, 0, None)
    except OSError as exc:
        log.warning("feature cache snapshot %s not read (%s); starting cold", path, exc)
        return Loaded(0, 0, None)
    try:
        doc = orjson.loads(raw)
        entries = _entries(doc)
        written_at = float(doc.get("written_at", 0.0))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        log.warning("feature cache snapshot %s is unreadable (%s); starting cold", path, exc)
        return Loaded(0, 0, None)
    usable = sorted((e for e in entries if now - e[3] <= horizon), key=lambda e: -e[3])
    kept = usable[: cache.max_entries]
    for entity, ref, value, event_time in reversed(kept):  # the newest put last: kept
        cache.put(entity, ref, value, event_time)
    return Loaded(len(kept), len(entries) - len(kept), written_at)


async def save(path: Path, cache: LastKnownGood, now: float) -> None:
    """Copy the cache on the event loop (its only user), write the file in a thread; a
    failed write is logged, the previous snapshot stays."""
    entries = cache.entries()
    try:
        await asyncio.to_thread(write, path, entries, now)
    except OSError as exc:
        log.warning("feature cache snapshot %s not written: %s", path, exc)


async def keep_saving(
    path: Path, cache: LastKnownGood, clock: Callable[[], float], interval: float
) -> None:
    """Write a snapshot every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await save(path, cache, clock())
