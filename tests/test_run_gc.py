"""While a run holds its batches the cyclic GC collects the young generation every
:data:`doa.engines.launch.YOUNG_THRESHOLD` allocations with start-up's heap frozen; the
process gets its own thresholds and an unfrozen heap back when the run ends (a notebook or a
service embedding ``doa.run`` keeps its settings), whether the run ended or failed."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace

import pytest

from doa.engines.launch import YOUNG_THRESHOLD, RunOptions, RunReport, _run_then_stop


class Worker:
    """Stands in for an engine's node worker: records what the GC looked like while running."""

    def __init__(self, fail: bool = False) -> None:
        self.node = SimpleNamespace(name="n")
        self.fail = fail
        self.seen: list[tuple[tuple[int, int, int], int]] = []

    async def start(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        self.seen.append((gc.get_threshold(), gc.get_freeze_count()))
        if self.fail:
            raise RuntimeError("a node failed")
        await stop.wait()

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("fail", [False, True])
def test_a_run_raises_the_young_threshold_and_gives_the_old_one_back(fail: bool) -> None:
    before = gc.get_threshold()
    gc.set_threshold(900, 11, 12)  # not CPython's default, so a reset to defaults shows
    try:
        worker = Worker(fail)
        report = RunReport(broker="localhost:0", seconds=0.0)
        # until the worker has looked (not a time: a loaded machine may run it late)
        asyncio.run(_run_then_stop([worker], asyncio.Event(), time.monotonic(),
                                   RunOptions(until=lambda _: bool(worker.seen)), report,
                                   grace=2.0))
        (during, frozen), = worker.seen
        assert during == (YOUNG_THRESHOLD, 11, 12)
        assert frozen > 0  # start-up's objects were out of the collector's reach
        assert gc.get_threshold() == (900, 11, 12)
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)
