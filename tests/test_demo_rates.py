"""The demo's node rates: mean and best events/s come from the same one-second ticks, so the
summary never shows a mean above the best (seen: featurize 1,803 mean, 1,524 best)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from doa.demo.live import LiveView, Track
from doa.demo.summary import _nodes


def _view() -> LiveView:
    topology = SimpleNamespace(name="t", nodes={"a": SimpleNamespace(kind="kernel")})
    console = Console(file=io.StringIO(), width=200)
    return LiveView(topology, Track({}), console, seconds=10, every=1e9)


def _stats(n: int, first: float, last: float) -> Any:
    return SimpleNamespace(records_in=n, records_out=n, dead_letters=0, first_batch_at=first,
                           last_batch_at=last, warm_up_s=0.0)


def test_mean_and_best_over_the_same_ticks() -> None:
    view = _view()
    # bursts: 500 events in the first second, none in the second, 1,000 in the third
    for elapsed, n in [(0.0, 0), (1.0, 500), (2.0, 500), (3.0, 1500)]:
        view.tick(elapsed, {"a": _stats(n, 0.1, 0.2)})
    assert view.peaks == {"a": 1000.0}
    assert view.means == {"a": (500 + 1000) / 2.0}  # the idle second is not busy time
    assert view.means["a"] <= view.peaks["a"]


def test_the_summary_shows_them() -> None:
    view = _view()
    for elapsed, n in [(0.0, 0), (1.0, 300), (2.0, 900)]:
        view.tick(elapsed, {"a": _stats(n, 0.0, 0.01)})
    # the node's first and last batch 10 ms apart: a mean over them would say 90,000/s
    table = _nodes({"a": _stats(900, 0.0, 0.01)}, view.topology, view.peaks, view.means)
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    row = next(line for line in console.file.getvalue().splitlines() if line.startswith("a "))
    assert row.split()[5:7] == ["450", "600"], row  # mean, best
