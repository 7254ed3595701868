"""The demo's summary: accuracy around each drift point, detections, models, nodes.

A regressor's outcomes are scored by their mean absolute error, a classifier's by accuracy
(see :class:`doa.demo.live.Track`).

Examples
--------
>>> from doa.demo.live import Track
>>> from doa.events import Event
>>> [type(r).__name__ for r in summary(Track({}), [], 0)]
['Text', 'Text', 'Text']
>>> track = Track({"outcomes": "outcome"})
>>> for i, (y, y_pred) in enumerate([(20.0, 21.5), (30.0, 26.0)]):
...     track.add(Event({"join": str(i), "model": "r", "model_version": 1, "prediction": y_pred,
...                      "label": y, "correct": None, "error": abs(y - y_pred)},
...                     stream="outcomes", partition=0, offset=i, timestamp=0))
>>> print(summary(track, [], 2)[0])
summary: 2 predictions met their label, mean absolute error 2.75 overall
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from doa.demo.live import Detection, Track, shown


def summary(track: Track, points: Sequence[int], n: int,
            stats: Mapping[str, Any] | None = None,
            topology: Any = None, peaks: Mapping[str, float] | None = None,
            rate: float | None = None, means: Mapping[str, float] | None = None
            ) -> list[RenderableType]:
    """The end of the demo: accuracy around each drift point, detections, model changes,
    and (on a broker) what each node did. ``rate``: events per second of event time, to
    give detection delays in seconds too. ``peaks`` and ``means``: each node's best and mean
    events per second over the live view's one-second ticks (:class:`doa.demo.live.LiveView`)."""
    out: list[RenderableType] = [_headline(track, n)]
    detections = track.detections(points)
    if points:
        out += _drift_points(track, points, n, detections, rate)
    else:
        out += [Text(f"drift: {d.node} fired at position {d.position}") for d in detections]
    out += [_models(track), _unmatched(track)]
    if stats and topology is not None:
        out.append(_nodes(stats, topology, peaks or {}, means or {}))
    return out


def _headline(track: Track, n: int) -> Text:
    """How many predictions met their label, and their accuracy (classifiers) or mean absolute
    error (regressors) over all ``n`` events."""
    early = (f" ({track.unpredicted:,} more came before the model had learned anything)"
             if track.unpredicted else "")
    scores = ", ".join(f"{m} {shown(m, track.score(m, 0, n))}" for m in track.measures())
    return Text.assemble(("summary: ", "bold"), f"{track.measured:,} predictions met their "
                         f"label" + (f", {scores} overall" if scores else "") + early)


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False)


def _drift_points(track: Track, points: Sequence[int], n: int,
                  detections: Sequence[Detection], rate: float | None) -> list[RenderableType]:
    """A row per drift point (accuracy or mean absolute error before, after, recovered; first
    detection and its delay), then a line for each detection before the first point or after
    a first one. One table per measure (both when classifiers and regressors learn)."""
    window = _window(points, n)
    tables: list[RenderableType] = []
    later: list[Detection] = []
    for measure in track.measures() or ["accuracy"]:
        table = _table(f"{measure} around the drift points ({window:,} events each)")
        for col in ("drift at", "before", "after", "recovered", "detected at", "delay"):
            table.add_column(col, justify="right")
        later = []
        for point, nxt in zip(points, [*points[1:], n], strict=True):
            hits = [d for d in detections if d.point == point and d.position is not None]
            first = min(hits, key=lambda d: d.position or 0) if hits else None
            later += [d for d in hits if d is not first]
            table.add_row(f"{point:,}", *(shown(measure, track.score(measure, a, b)) for a, b in
                                          ((point - window, point), (point, point + window),
                                           (nxt - window, nxt))),
                          *_first_detection(first, rate))
        tables.append(table)
    early = [d for d in detections if d.point is None]
    return [*tables, *_also_fired("before the first drift point", early),
            *_also_fired("again", later)]


def _also_fired(what: str, found: Sequence[Detection]) -> list[Text]:
    """One line listing detections that are not a drift point's first (none if none)."""
    if not found:
        return []
    return [Text(f"the detector also fired {what}: at " + ", ".join(
        f"{d.position:,}" if d.position is not None else "?" for d in found))]


def _first_detection(first: Detection | None, rate: float | None) -> tuple[str, str]:
    """The "detected at" and "delay" cells of a drift point's row."""
    if first is None or first.position is None:
        return "not detected", "-"
    return f"{first.position:,}", "-" if first.delay is None else _delay(first.delay, rate)


def _models(track: Track) -> Text:
    """Versions created, each reset or rollback, and the version each model is at now."""
    versions, changes, created = track.state()
    parts = [f"{created} versions created"]
    parts += [f"{c['action']} to version {c['version']} after {c['labels']:,} labels"
              for _, c in changes] or ["no reset or rollback"]
    if versions:
        parts.append("now " + ", ".join(f"{m} version {v}" for m, v in versions.items()))
    return Text("models: " + "; ".join(parts))


def _unmatched(track: Track) -> Text:
    """Labels that met no prediction, counted by reason."""
    with track.lock:
        reasons = dict(track.unmatched)
    return Text("labels unmatched: " + (", ".join(
        f"{c:,} {r}" for r, c in sorted(reasons.items())) + " (see the unmatched stream)"
        if reasons else "none"))


def _nodes(stats: Mapping[str, Any], topology: Any, peaks: Mapping[str, float],
           means: Mapping[str, float]) -> Table:
    """A row per node: records in, out and dead, mean and best rate, warm-up time."""
    table = _table("nodes (events/s: mean over the seconds it took events, and the best one)")
    for col in ("node", "kind", "in", "out", "dead", "events/s", "best/s", "warm-up"):
        table.add_column(col, justify="left" if col in ("node", "kind") else "right",
                         no_wrap=True)
    for name, s in stats.items():
        table.add_row(name, topology.nodes[name].kind, f"{s.records_in:,}",
                      f"{s.records_out:,}", f"{s.dead_letters:,}",
                      f"{means[name]:,.0f}" if name in means else "-",
                      f"{peaks[name]:,.0f}" if name in peaks else "-", f"{s.warm_up_s:.2f} s")
    return table


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
