"""The demo's summary: accuracy around each drift point, detections, models, nodes.

Examples
--------
>>> from doa.demo.live import Track
>>> [type(r).__name__ for r in summary(Track({}), [], 0)]
['Text', 'Text', 'Text']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from doa.demo.live import Detection, Track, _pct


def summary(track: Track, points: Sequence[int], n: int,
            stats: Mapping[str, Any] | None = None,
            topology: Any = None, peaks: Mapping[str, float] | None = None,
            rate: float | None = None) -> list[RenderableType]:
    """The end of the demo: accuracy around each drift point, detections, model changes,
    and (on a broker) what each node did. ``rate``: events per second of event time, to
    give detection delays in seconds too."""
    out: list[RenderableType] = []
    total = track.accuracy(0, n)
    out.append(Text.assemble(("summary: ", "bold"), f"{len(track.errors):,} predictions "
                             f"met their label, accuracy {_pct(total)} overall"
                             + (f" ({track.unpredicted:,} more came before the model had "
                                "learned anything)" if track.unpredicted else "")))
    detections = track.detections(points)
    if points:
        window = _window(points, n)
        table = Table(title=f"accuracy around the drift points ({window:,} events each)",
                      title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      pad_edge=False)
        for col in ("drift at", "before", "after", "recovered", "detected at", "delay"):
            table.add_column(col, justify="right")
        later: list[Detection] = []
        for point, nxt in zip(points, [*points[1:], n], strict=True):
            hits = [d for d in detections if d.point == point and d.position is not None]
            first = min(hits, key=lambda d: d.position or 0) if hits else None
            later += [d for d in hits if d is not first]
            table.add_row(f"{point:,}", _pct(track.accuracy(point - window, point)),
                          _pct(track.accuracy(point, point + window)),
                          _pct(track.accuracy(nxt - window, nxt)),
                          f"{first.position:,}" if first and first.position is not None
                          else "not detected",
                          _delay(first.delay, rate) if first and first.delay is not None
                          else "-")
        out.append(table)
        early = [d for d in detections if d.point is None]
        for what, found in (("before the first drift point", early), ("again", later)):
            if found:
                out.append(Text(f"the detector also fired {what}: at " + ", ".join(
                    f"{d.position:,}" if d.position is not None else "?" for d in found)))
    else:
        for d in detections:
            out.append(Text(f"drift: {d.node} fired at position {d.position}"))
    versions, changes, created = track.state()
    parts = [f"{created} versions created"]
    parts += [f"{c['action']} to version {c['version']} after {c['labels']:,} labels"
              for _, c in changes] or ["no reset or rollback"]
    if versions:
        parts.append("now " + ", ".join(f"{m} version {v}" for m, v in versions.items()))
    out.append(Text("models: " + "; ".join(parts)))
    with track.lock:
        reasons = dict(track.unmatched)
    out.append(Text("labels unmatched: " + (", ".join(
        f"{c:,} {r}" for r, c in sorted(reasons.items())) + " (see the unmatched stream)"
        if reasons else "none")))
    if stats and topology is not None:
        table = Table(title="nodes (events/s: mean while busy, and the best second)",
                      title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      pad_edge=False)
        for col in ("node", "kind", "in", "out", "dead", "events/s", "best/s", "warm-up"):
            table.add_column(col, justify="left" if col in ("node", "kind") else "right",
                             no_wrap=True)
        for name, s in stats.items():
            busy = (s.last_batch_at - s.first_batch_at) if s.first_batch_at and \
                s.last_batch_at else 0.0
            table.add_row(name, topology.nodes[name].kind, f"{s.records_in:,}",
                          f"{s.records_out:,}", f"{s.dead_letters:,}",
                          f"{s.records_in / busy:,.0f}" if busy > 0 else "-",
                          f"{(peaks or {}).get(name, 0.0):,.0f}",
                          f"{s.warm_up_s:.2f} s")
        out.append(table)
    return out


def _window(points: Sequence[int], n: int) -> int:
    """Events compared before and after a drift point: 1000, less if points are close."""
    gaps = [b - a for a, b in zip([0, *points], [*points, n], strict=True)]
    return max(1, min([1000, *(g // 3 for g in gaps)]))


def _delay(events: int, rate: float | None) -> str:
    """A detection delay in events, and in seconds of event time when the rate is known.

    >>> _delay(145, 2000.0), _delay(3, None)
    ('145 events (0.07 s)', '3 events')
    """
    return f"{events:,} events" + (f" ({events / rate:.2f} s)" if rate else "")
