"""What ``doa demo`` shows while a topology with learners runs, and its summary at the end.

:class:`Track` follows the learners through their own streams, as any service could: outcomes
(rolling accuracy for classifiers, mean absolute error for regressors: an outcome with no
``correct`` has ``error`` = ``|y - y_pred|``), model events (versions, resets, rollbacks) and
drift events. On a broker
:class:`doa.demo.replay.Watcher` feeds it from a :class:`doa.client.Subscriber`; in memory the demo
feeds it the harness's records. :class:`LiveView` adds the nodes' events per second (from the
``NodeStats`` that :func:`doa.engines.launch.run_nodes` passes its ``tick`` every second)
and draws it
all with ``rich.live`` on a terminal, or prints a status line every few seconds and one line
per drift or model event when the output is not a terminal (a pipe, a test).

An outcome's position is its ``join`` value when that is an integer (the demo sources number
their records), else its arrival order; drift points, when the topology module gives them
(``drift_points(n)``), are positions too, so the summary can say how many events after a
drift point the detector fired and what accuracy (or the error) did around it.

Examples
--------
>>> from doa.events import Event
>>> track = Track({"outcomes": "outcome", "drift": "drift"})
>>> for i in range(8):
...     track.add(Event({"join": str(i), "model": "m", "model_version": 1, "prediction": True,
...                      "correct": i < 4 or i == 7, "error": 0.0 if i < 4 or i == 7 else 1.0},
...                     stream="outcomes", partition=0, offset=i, timestamp=0))
>>> track.add(Event({"node": "watch", "detector": "DDM()", "signal": "error",
...                  "stream": "outcomes", "partition": 0, "offset": 6, "position": 7},
...                 stream="drift", partition=0, offset=0, timestamp=0))
>>> track.accuracy(0, 4), track.accuracy(4, 8), track.rolling()
(1.0, 0.25, 0.625)
>>> [(d.position, d.point, d.delay) for d in track.detections((4,))]
[(6, 4, 2)]

A regressor's outcomes give its mean absolute error, never an accuracy:

>>> track = Track({"outcomes": "outcome"})
>>> for i, error in enumerate([2.0, 4.0, 30.0]):
...     track.add(Event({"join": str(i), "model": "r", "model_version": 1, "prediction": 1.5,
...                      "correct": None, "error": error},
...                     stream="outcomes", partition=0, offset=i, timestamp=0))
>>> track.measures(), track.rolling(MAE), track.score(MAE, 0, 2), track.rolling()
(['mean absolute error'], 12.0, 3.0, None)
>>> scores_text(track)
'mean absolute error (last 500) 12'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["ACCURACY", "MAE", "Detection", "LiveView", "Track", "roles", "scores_text", "shown"]

WINDOW = 500  # outcomes in the rolling accuracy
ACCURACY = "accuracy"  # of classifiers' outcomes: 1 - mean(error), error 1.0 wrong, 0.0 right
MAE = "mean absolute error"  # of regressors' outcomes: mean(error), error |y - y_pred|


def roles(topology: Any) -> dict[str, str]:
    """The streams that tell what learners do: stream name → outcome/model/drift/unmatched.

    Taken from what each node's kind describes (:meth:`doa.node.NodeKind.describe`: its
    streams by role); empty when no node describes a model.
    """
    found: dict[str, str] = {}
    learners = False
    for node in topology.nodes.values():
        about = node.spec.describe()
        learners = learners or "model" in about
        for role, stream in about.get("streams", {}).items():
            if role in _ROLES and isinstance(stream, str):
                found[stream] = _ROLES[role]
    return found if learners else {}


_ROLES = {"outcomes": "outcome", "models": "model", "drift": "drift", "unmatched": "unmatched"}


@dataclass(frozen=True)
class Detection:
    """A drift event, where it was triggered, and the drift point it follows (if any)."""

    node: str
    position: int | None  # the triggering outcome's position (None: not read yet)
    point: int | None  # the latest known drift point at or before it

    @property
    def delay(self) -> int | None:
        """Events from the drift point to the detection."""
        if self.position is None or self.point is None:
            return None
        return self.position - self.point


class Track:
    """Outcomes, model events and drift events of a topology's learners; thread-safe.

    Parameters
    ----------
    streams : stream name → role, see :func:`roles`
    clock : seconds since the run started (None: events carry no time)
    """

    def __init__(self, streams: Mapping[str, str],
                 clock: Callable[[], float] | None = None) -> None:
        self.streams = dict(streams)
        self.clock = clock
        self.lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.recent: dict[str, deque[float]] = {m: deque(maxlen=WINDOW) for m in (ACCURACY, MAE)}
        self.errors: dict[str, dict[int, float]] = {ACCURACY: {}, MAE: {}}  # position → error
        self.unpredicted = 0  # outcomes of predictions the model could not make yet
        self.at: dict[tuple[str, int, int], int] = {}  # outcome (stream, partition, offset)
        self.version: dict[str, int] = {}  # model → version in use
        self.created = 0
        self.changes: list[tuple[float | None, dict[str, Any]]] = []  # resets, rollbacks, ...
        self.drifts: list[tuple[float | None, dict[str, Any]]] = []
        self.news: list[tuple[float, float | None, dict[str, Any]]] = []  # not printed yet
        self.unmatched: dict[str, int] = {}  # reason → labels (see doa.UnmatchedLabel)

    def add(self, event: Any) -> None:
        """Take one decoded event of a watched stream."""
        role = self.streams.get(event.stream)
        if role is None:
            return
        elapsed = self.clock() if self.clock is not None else None
        with self.lock:
            self.counts[event.stream] += 1
            if role == "outcome":
                position = _position(event.get("join"), self.counts[event.stream] - 1)
                self.at[(event.stream, event.partition, event.offset)] = position
                if event.get("prediction") is None:  # nothing learned yet: as River's
                    self.unpredicted += 1            # metrics, accuracy leaves it out
                else:
                    correct = event.get("correct")
                    measure = MAE if correct is None else ACCURACY
                    error = float(event.get("error") or 0.0) if correct is None \
                        else float(not correct)
                    self.errors[measure][position] = error
                    self.recent[measure].append(error)
                self.version.setdefault(event["model"], int(event["model_version"]))
            elif role == "model":
                self.version[event["model"]] = int(event["version"])
                if event["action"] == "created":
                    self.created += 1
                else:
                    self.changes.append((elapsed, dict(event)))
                    self.news.append((time.monotonic(), elapsed, dict(event)))
            elif role == "unmatched":
                reason = str(event.get("reason"))
                self.unmatched[reason] = self.unmatched.get(reason, 0) + 1
            elif role == "drift":
                self.drifts.append((elapsed, dict(event)))
                self.news.append((time.monotonic(), elapsed, dict(event)))

    # -- reading ------------------------------------------------------------------------------
    def measures(self) -> list[str]:
        """What the outcomes seen measure: :data:`ACCURACY` (classifiers), :data:`MAE`
        (regressors), or both; none before the first outcome with a prediction."""
        with self.lock:
            return [m for m in (ACCURACY, MAE) if self.errors[m]]

    @property
    def measured(self) -> int:
        """Outcomes that had a prediction (the ones scored)."""
        with self.lock:
            return sum(len(e) for e in self.errors.values())

    def rolling(self, measure: str = ACCURACY) -> float | None:
        """``measure`` over the last ``WINDOW`` outcomes it applies to."""
        with self.lock:
            return _measure(measure, list(self.recent[measure]))

    def score(self, measure: str, start: int, stop: int) -> float | None:
        """``measure`` over the outcomes at positions ``start <= p < stop`` seen so far."""
        with self.lock:
            errors = self.errors[measure]
            return _measure(measure, [errors[p] for p in range(start, stop) if p in errors])

    def accuracy(self, start: int, stop: int) -> float | None:
        """Accuracy of the classifiers' outcomes at positions ``start <= p < stop``."""
        return self.score(ACCURACY, start, stop)

    def take_news(self, wait: float = 2.0) -> list[str]:
        """Lines for the drift and model events not taken yet, oldest first.

        A drift event whose triggering outcome has not been read yet waits (up to ``wait``
        seconds, and so do the events after it) so that its line can give the position.
        """
        lines = []
        with self.lock:
            while self.news:
                seen, elapsed, event = self.news[0]
                if "action" in event:
                    lines.append(_change_line(elapsed, event))
                elif (event["stream"], event["partition"], event["offset"]) in self.at or \
                        time.monotonic() - seen > wait or wait == 0:
                    lines.append(_drift_line(elapsed, event, self.at))
                else:
                    break
                self.news.pop(0)
        return lines

    def detections(self, points: Sequence[int] = ()) -> list[Detection]:
        """Every drift event with its triggering position and the drift point before it."""
        with self.lock:
            drifts = list(self.drifts)
            at = dict(self.at)
        found = []
        for _, d in drifts:
            position = at.get((d["stream"], d["partition"], d["offset"]))
            before = [p for p in points if position is not None and p <= position]
            found.append(Detection(d["node"], position, max(before) if before else None))
        return found

    def state(self) -> tuple[dict[str, int], list[tuple[float | None, dict[str, Any]]], int]:
        with self.lock:
            return dict(self.version), list(self.changes), self.created


class LiveView:
    """The demo's screen: nodes' events per second, the learners, drift and model events.

    ``tick(elapsed, stats)`` is :func:`doa.engines.launch.run_nodes`'s callback; call :meth:`start`
    before the run and :meth:`stop` after it.
    """

    def __init__(self, topology: Any, track: Track, console: Console, seconds: float,
                 progress: Callable[[], str] = str, every: float = 3.0) -> None:
        self.topology = topology
        self.track = track
        self.console = console
        self.seconds = seconds
        self.progress = progress
        self.every = every  # seconds between status lines when not on a terminal
        self.rates: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self._busy: dict[str, tuple[int, float]] = {}  # events, seconds: ticks that moved
        self.stats: dict[str, Any] = {}
        self.elapsed = 0.0
        self._last: tuple[float, dict[str, int]] | None = None
        self._printed_at = 0.0
        self._live: Any = None

    def start(self) -> None:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(console=self.console, get_renderable=self.render,
                              refresh_per_second=4, transient=False)
            self._live.start()

    def tick(self, elapsed: float, stats: Mapping[str, Any]) -> None:
        if self._last is None:  # events are timed from the start of the run, as ticks are
            self.track.clock = clock_from(time.monotonic() - elapsed)
        counts = {name: s.records_in for name, s in stats.items()}
        if self._last is not None:
            dt = elapsed - self._last[0]
            if dt > 0:
                for name, n in counts.items():
                    moved = n - self._last[1].get(name, 0)
                    rate = self.rates[name] = moved / dt
                    self.peaks[name] = max(self.peaks.get(name, 0.0), rate)
                    if moved > 0:
                        events, seconds = self._busy.get(name, (0, 0.0))
                        self._busy[name] = (events + moved, seconds + dt)
        self._last = (elapsed, counts)
        self.stats = dict(stats)
        self.elapsed = elapsed
        if self._live is None:
            for line in self.track.take_news():
                self.console.print(line, markup=False, highlight=False)
            if elapsed - self._printed_at >= self.every:
                self._printed_at = elapsed
                self.console.print(self.status_line(), markup=False, highlight=False)

    @property
    def means(self) -> dict[str, float]:
        """Each node's events per second over the ticks in which it took events: the same
        windows as :attr:`peaks`, so a mean never tops the best (a mean over the node's own
        first and last batch did, when it took its events in bursts shorter than a tick)."""
        return {name: events / seconds for name, (events, seconds) in self._busy.items()
                if seconds > 0}

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        else:
            for line in self.track.take_news(wait=0):
                self.console.print(line, markup=False, highlight=False)

    # -- drawing -------------------------------------------------------------------------------
    def status_line(self) -> str:
        nodes = " | ".join(f"{name} {self.rates.get(name, 0.0):,.0f}/s"
                           for name in self.topology.nodes)
        versions, _, _ = self.track.state()
        model = ", ".join(f"{m} v{v}" for m, v in versions.items())
        return (f"[{self.elapsed:5.1f}s] {self.progress()} | {nodes} | "
                f"{scores_text(self.track)} | {model or 'no model yet'}")

    def render(self) -> RenderableType:
        nodes = Table(title=f"{self.topology.name}: {self.elapsed:4.1f} s of "
                            f"{self.seconds:.0f} s; {self.progress()}", title_justify="left")
        for col in ("node", "kind", "events/s", "in", "out", "dead letters", "warm-up"):
            nodes.add_column(col, justify="left" if col in ("node", "kind") else "right")
        for name, node in self.topology.nodes.items():
            s = self.stats.get(name)
            nodes.add_row(name, node.kind, f"{self.rates.get(name, 0.0):,.0f}",
                          f"{s.records_in:,}" if s else "-", f"{s.records_out:,}" if s else "-",
                          f"{s.dead_letters:,}" if s else "-",
                          f"{s.warm_up_s:.2f} s" if s and s.warm_up_s >= 0.005 else "")
        versions, changes, created = self.track.state()
        model = ", ".join(f"{m} version {v}" for m, v in versions.items()) or "-"
        lines = [Text.assemble(scores_text(self.track), ("   model: ", "bold"), model,
                               f"   ({created} versions created, {len(changes)} resets or "
                               "rollbacks)")]
        with self.track.lock:
            drifts = [_drift_line(e, d, self.track.at) for e, d in self.track.drifts]
        events = sorted(drifts + [_change_line(e, c) for e, c in changes])[-8:]
        return Group(nodes, *lines, *(map(Text, events or ["no drift event yet"])))


def _position(join: Any, fallback: int) -> int:
    try:
        return int(join)
    except (TypeError, ValueError):
        return fallback


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _measure(measure: str, errors: Sequence[float]) -> float | None:
    if not errors:
        return None
    mean = sum(errors) / len(errors)
    return 1.0 - mean if measure == ACCURACY else mean


def shown(measure: str, value: float | None) -> str:
    """A value of ``measure`` as the demo prints it: accuracy in percent, an error as is.

    >>> shown(ACCURACY, 0.9125), shown(MAE, 25.70512), shown(MAE, None)
    ('91.2%', '25.71', '-')
    """
    return _pct(value) if measure == ACCURACY else "-" if value is None else f"{value:.4g}"


def scores_text(track: Track) -> str:
    """The rolling scores: ``accuracy (last 500) 91.2%``, ``mean absolute error (last 500)
    3.2``, or that no outcome has come yet."""
    return ", ".join(f"{m} (last {WINDOW}) {shown(m, track.rolling(m))}"
                     for m in track.measures()) or "no outcome yet"


def _when(elapsed: float | None) -> str:
    return "" if elapsed is None else f"[{elapsed:5.1f}s] "


def _drift_line(elapsed: float | None, d: Mapping[str, Any],
                at: Mapping[tuple[str, int, int], int]) -> str:
    position = at.get((d["stream"], d["partition"], d["offset"]))
    where = f"position {position:,}" if position is not None else \
        f"{d['stream']} offset {d['offset']:,}"
    return (f"{_when(elapsed)}drift: {d['node']} fired on {d['signal']} "
            f"({d['detector'].split('(', 1)[0]}) at {where}")


def _change_line(elapsed: float | None, c: Mapping[str, Any]) -> str:
    return (f"{_when(elapsed)}model {c['model']}: {c['action']} to version {c['version']} "
            f"(from {c['from_version']}) after {c['labels']:,} labels")


def clock_from(start: float) -> Callable[[], float]:
    """Seconds since ``start`` (a ``time.monotonic()`` value)."""
    return lambda: time.monotonic() - start
