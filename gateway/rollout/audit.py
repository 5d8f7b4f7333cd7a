"""The rollout audit log: one JSON line per change (who, when, what, before, after)."""

from __future__ import annotations

import datetime
import getpass
import os
import socket
from pathlib import Path
from typing import Any

import orjson


def default_log_path(config: Path) -> Path:
    return config.with_name(f"{config.name}.audit.jsonl")


def who() -> str:
    """``$GATEWAY_ACTOR`` when set (CI jobs name themselves), else ``user@host``."""
    actor = os.environ.get("GATEWAY_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def record(
    log: Path,
    command: str,
    model: str,
    before: Any,
    after: Any,
    *,
    actor: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one change; ``actor`` names who made it (default :func:`who`), ``extra``
    adds fields (the rollout analysis adds ``checks`` and ``reason``)."""
    entry = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "who": actor or who(),
        "command": command,
        "model": model,
        "before": before,
        "after": after,
        **(extra or {}),
    }
    with log.open("ab") as handle:
        handle.write(orjson.dumps(entry) + b"\n")
    return entry
