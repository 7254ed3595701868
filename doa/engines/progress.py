"""The one count of :class:`doa.engines.NodeStats` the engines do not keep: ``skipped``.

A node skips a record ``doa dlq --replay`` re-published for another node
(:attr:`doa.runtime.runner.BatchResult.skipped`). The node's
:class:`doa.observe.meter.MeteredRunner` counts those per input stream, in the batches that
have any; ``doa run`` copies the total into the node's stats before each status line and at
the end of the run, about a microsecond a node, instead of a count on every engine's batch path.

Examples
--------
>>> from types import SimpleNamespace
>>> from doa.engines import NodeStats
>>> from doa.observe.meter import Meter
>>> meter = Meter()
>>> meter.skipped.update({"alerts": 2, "labels": 1})
>>> worker = SimpleNamespace(stats=NodeStats(), states={}, runner=SimpleNamespace(meter=meter))
>>> count_skipped([worker])
>>> worker.stats.skipped
3
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from doa.engines import NodeStats
from doa.observe.metrics import partitioned

Tick = Callable[[float, dict[str, NodeStats]], None]


def count_skipped(workers: Sequence[Any]) -> None:
    """Set each worker's ``stats.skipped`` from its node's meter (a Faust worker whose node is
    not mounted yet keeps its count)."""
    for worker in workers:
        meter = getattr(getattr(partitioned(worker), "runner", None), "meter", None)
        if meter is not None:
            worker.stats.skipped = sum(dict(meter.skipped).values())


def counting_skipped(tick: Tick | None, workers: Sequence[Any]) -> Tick | None:
    """``tick``, called after :func:`count_skipped` (None: None)."""
    if tick is None:
        return None

    def counted(elapsed: float, stats: dict[str, NodeStats]) -> None:
        count_skipped(workers)
        tick(elapsed, stats)
    return counted
