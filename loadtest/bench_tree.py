"""CPU and memory of a server under test: every process of its tree, summed.

nginx answers from worker processes its master forks; ``gateway serve --workers N`` and
``feast serve`` (gunicorn) do the same. Reading the started process alone gives the
master's figures (nginx: 0.0 CPU, a few MB). So every figure is a sum over the process and
all its descendants: CPU seconds (user + system, each process's own and its waited-for
children's, so a worker that exits and is reaped keeps counting), resident memory (shared
pages count in each process that maps them), and the peak: the sum of each process's own
peak (``VmHWM``), which bounds the tree's peak from above and is exact for one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MB = 2**20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    pid: int
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


@dataclass(frozen=True, slots=True)
class TreeFigures:
    processes: int
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def total(figures: Sequence[ProcessFigures]) -> TreeFigures:
    """The tree's figures: the sum of its processes'."""
    return TreeFigures(
        processes=len(figures),
        cpu_seconds=sum(f.cpu_seconds for f in figures),
        rss_bytes=sum(f.rss_bytes for f in figures),
        peak_rss_bytes=sum(f.peak_rss_bytes for f in figures),
    )


def descendants(parents: Mapping[int, int], root: int) -> list[int]:
    """``root`` and every process below it, given each process's parent (breadth first)."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree, index = [root], 0
    while index < len(tree):
        tree += sorted(children.get(tree[index], []))
        index += 1
    return tree


def _stat_fields(pid: int, proc: Path) -> list[str]:
    # The command name (in parentheses) may hold spaces: the fields follow its last ")".
    return (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def parents(proc: Path = PROC) -> dict[int, int]:
    """Every running process's parent."""
    out = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = int(_stat_fields(int(entry.name), proc)[1])
            except (OSError, IndexError, ValueError):
                continue  # exited while being read
    return out


def figures_of(pid: int, proc: Path = PROC) -> ProcessFigures:
    """One process's CPU (user + system, its own and its waited-for children's) and RSS."""
    fields = _stat_fields(pid, proc)
    cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    memory = {}
    for line in (proc / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) * 1024
    return ProcessFigures(pid, cpu, memory.get("VmRSS", 0), memory.get("VmHWM", 0))


def read(pid: int, proc: Path = PROC) -> list[ProcessFigures]:
    """Figures of ``pid`` and each of its descendants (those that exit while being read are
    left out; ``pid`` itself must be there)."""
    out = [figures_of(pid, proc)]
    for child in descendants(parents(proc), pid)[1:]:
        try:
            out.append(figures_of(child, proc))
        except (OSError, IndexError, ValueError):
            continue
    return out


def tree(pid: int) -> TreeFigures:
    return total(read(pid))
