"""CPU and RSS of a server under test are summed over its whole process tree (nginx's master
and workers), read from a synthetic ``/proc``."""

from __future__ import annotations

from pathlib import Path

from loadtest import bench_tree
from loadtest.bench_tree import MB, ProcessFigures, descendants, read, total

TICK = bench_tree.CLK_TCK


def _process(proc: Path, pid: int, parent: int, ticks: tuple[int, int, int, int],
             rss_kb: int, peak_kb: int, name: str = "nginx: worker process") -> None:  # fmt: skip
    folder = proc / str(pid)
    folder.mkdir()
    # Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime ...
    rest = ["S", str(parent), *["0"] * 9, *map(str, ticks), *["0"] * 10]
    (folder / "stat").write_text(f"{pid} ({name}) {' '.join(rest)}\n")
    (folder / "status").write_text(f"Name:\tx\nVmHWM:\t{peak_kb} kB\nVmRSS:\t{rss_kb} kB\n")


def test_descendants_are_found_at_every_depth_and_nothing_else() -> None:
    parents = {10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert descendants(parents, 10) == [10, 11, 12, 13]
    assert descendants(parents, 13) == [13]


def test_the_tree_sums_master_and_workers(tmp_path: Path) -> None:
    _process(tmp_path, 100, 1, (1 * TICK, 0, 0, 0), 6000, 6600, "nginx: master process")
    _process(tmp_path, 101, 100, (30 * TICK, 10 * TICK, 0, 0), 8000, 9000)
    _process(tmp_path, 102, 100, (5 * TICK, 0, 0, 0), 7000, 7000)
    _process(tmp_path, 200, 1, (99 * TICK, 0, 0, 0), 50000, 50000, "not ours")
    (tmp_path / "self").mkdir()  # non-numeric entries are skipped
    figures = read(100, tmp_path)
    assert [f.pid for f in figures] == [100, 101, 102]
    tree = total(figures)
    assert tree.processes == 3
    assert tree.cpu_seconds == 46.0  # the master alone: 1.0
    assert tree.rss_bytes == 21000 * 1024 and tree.peak_rss_bytes == 22600 * 1024


def test_reaped_childrens_cpu_counts_and_a_name_with_parentheses_is_read(tmp_path: Path) -> None:
    _process(tmp_path, 7, 1, (1 * TICK, 1 * TICK, 2 * TICK, 3 * TICK), 1024, 2048, "a (b) c")
    (figure,) = read(7, tmp_path)
    assert figure == ProcessFigures(7, 7.0, MB, 2 * MB)
