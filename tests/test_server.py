"""Process-level settings the gateway applies before it serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.server import GC_GEN0_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    built_at_startup: list[list[str]] = [["a model"]]  # a container the collector tracks
    assert any(o is built_at_startup for o in gc.get_objects())
    _, middle, oldest = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, middle, oldest)
    assert not any(o is built_at_startup for o in gc.get_objects())  # frozen: not tracked
