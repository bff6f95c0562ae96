"""The collector settings a service's hot loop runs with."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from billing_runtime.heap import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_start_up_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _, middle, old = gc.get_threshold()
    kept: list[object] = [[] for _ in range(10)]
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    # frozen: no collection walks them any more
    assert not any(o is kept for o in gc.get_objects())
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    # a cycle made after start-up is still collected
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
