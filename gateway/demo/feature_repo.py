"""The demo's Feast feature repo: prepare a working copy and build the ``feast serve`` command.

``prepare_feature_repo`` copies ``config/feature_repo`` into a scratch folder, writes the
customer stats as the offline data, then runs ``feast apply`` and ``feast materialize`` there,
so the SQLite online store holds every customer ``c-0000``..``c-9999``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from gateway.demo.data import customer_stats

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE: Final = PROJECT_ROOT / "config" / "feature_repo"
STATS_FILE: Final = "data/customer_stats.parquet"
# Rows are a few seconds to minutes old, like a live pipeline's output.
_MIN_AGE_S: Final = 5
_AGE_SPREAD_S: Final = 295
_MAX_DETAIL: Final = 4000
# Exits with _STEP_FAILED + n when step n fails, so the error can name the step.
_STEP_FAILED: Final = 100
_CLI_STEPS: Final = f"""
import sys, traceback
from feast.cli.cli import cli
for number, step in enumerate(sys.argv[1:]):
    try:
        cli.main(step.split(), prog_name="feast", standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            sys.exit({_STEP_FAILED} + number)
    except Exception:
        traceback.print_exc()
        sys.exit({_STEP_FAILED} + number)
"""


class FeatureRepoError(RuntimeError):
    """The feature repo could not be prepared; the message carries Feast's own output."""


def feast_executable() -> str:
    """The ``feast`` next to the running interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("feast")
    if beside.is_file():
        return str(beside)
    found = shutil.which("feast")
    if found is None:
        raise FeatureRepoError("the feast command is not installed: pip install -e '.[feast]'")
    return found


def write_customer_stats(repo: Path, *, seed: int = 7, now: datetime | None = None) -> Path:
    """Write ``customer_stats(seed)`` to the repo's parquet source, stamped just before ``now``."""
    now = now or datetime.now(UTC)
    stats = customer_stats(seed)
    age_s = _MIN_AGE_S + (np.arange(len(stats)) * 37) % _AGE_SPREAD_S
    stats["event_timestamp"] = now - pd.to_timedelta(age_s, unit="s")
    stats["created"] = now
    path = repo / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    stats.to_parquet(path, index=False)
    return path


def prepare_feature_repo(
    dest: Path,
    *,
    seed: int = 7,
    source: Path | None = None,
    now: datetime | None = None,
) -> Path:
    """Copy the feature repo from ``source`` into ``dest``, load it and return its absolute path.

    Rows are stamped a few seconds to minutes before ``now`` (default: the current time).

    Any previous registry and online store in ``dest`` are discarded, so a rerun starts
    clean instead of materializing only what is newer than the last run.
    """
    source = source or DEFAULT_SOURCE
    dest = dest.resolve()
    if not (source / "feature_store.yaml").is_file():
        raise FeatureRepoError(f"no feature_store.yaml in {source}")
    shutil.rmtree(dest / "data", ignore_errors=True)
    shutil.copytree(
        source,
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("data", "__pycache__", ".*"),
    )
    now = (now or datetime.now(UTC)).astimezone(UTC)
    write_customer_stats(dest, seed=seed, now=now)
    start = now - timedelta(seconds=_MIN_AGE_S + _AGE_SPREAD_S + 60)
    run_feast(dest, ["apply"], ["materialize", start.isoformat(), now.isoformat()])
    return dest


def feast_serve_command(
    repo: Path, host: str, port: int, *, max_requests: int | None = 0, workers: int = 1
) -> list[str]:
    """The command line that serves ``repo`` over HTTP on ``host:port``.

    ``max_requests`` 0 (the demo's): the worker is never recycled. ``None``: gunicorn's
    and Feast's default, a new worker every ~1,000 requests, as ``feast serve`` runs when
    started by hand (the gateway rides through the recycling; the tests run it so).
    """
    recycling = [] if max_requests is None else ["--max-requests", str(max_requests)]
    return [
        feast_executable(),
        "--chdir",
        str(repo.resolve()),
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *recycling,
        "--no-access-log",
    ]


def run_feast(repo: Path, *steps: list[str]) -> None:
    """Run ``feast <step>`` for each step in ``repo``, in order; raise on the first failure.

    Importing Feast takes ~5 s, so when this interpreter has Feast the steps share one
    child interpreter (through Feast's own CLI entry point) instead of one process each.
    """
    if importlib.util.find_spec("feast") is not None:
        _run([sys.executable, "-c", _CLI_STEPS, *(" ".join(s) for s in steps)], repo, steps)
        return
    for step in steps:
        _run([feast_executable(), *step], repo, [step])


def _run(cmd: list[str], cwd: Path, steps: Sequence[list[str]]) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    failed = done.returncode - _STEP_FAILED if len(steps) > 1 else 0
    step = steps[failed] if 0 <= failed < len(steps) else steps[0]
    detail = (done.stderr or done.stdout).strip()[-_MAX_DETAIL:]
    raise FeatureRepoError(f"`feast {' '.join(step)}` failed in {cwd}:\n{detail}")
