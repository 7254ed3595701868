"""Drift-detector nodes: a River detector on a declared signal, drift events on their own stream.

:func:`detector_node` watches one field of its input events (a feature, the learner's error or
loss, a prediction score) with a River drift detector (ADWIN, PageHinkley, KSWIN; DDM or EDDM
for binary error streams). Each time the detector fires, the node emits a ``doa.DriftEvent``
record (``doa/schemas/drift.avsc``) anchored on the event that triggered it: drift is data,
typed, replayable and traceable like any other record.

The node's state, per input partition, is a :class:`Watch` (a clone of the given detector and
the number of signal values it has seen), or with ``key=`` a dict from key to :class:`Watch`.
It pickles, so it is snapshotted and restored like any node state.

Only importing this module imports River; ``import doa`` does not.

Examples
--------
A mean shift after 200 values, watched by ADWIN; the step is called directly here (in a
topology, the runtime calls it on each micro-batch):

>>> from river import drift
>>> from doa.events import Event
>>> node = detector_node("watch_loss", reads="scores", writes="drifts", signal="loss",
...                      detector=drift.ADWIN())
>>> node.kind, node.spec.describe()["detector"]
('detector', 'ADWIN(delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10)')
>>> losses = [0.1 + 0.01 * (i % 3) for i in range(200)] + [0.9] * 100
>>> batch = [Event({"loss": x}, stream="scores", partition=0, offset=i, timestamp=1000 + i)
...          for i, x in enumerate(losses)]
>>> state, outputs = node.step(node.state(), batch)
>>> [(parent.offset, d["position"], d["offset"], d["timestamp"]) for parent, d in outputs]
[(223, 224, 223, 1223)]
>>> d = outputs[0][1]
>>> d["signal"], d["node"], d["key"], sorted(d["statistics"])
('loss', 'watch_loss', None, ['estimation', 'n_detections', 'total', 'variance', 'width'])
>>> state.seen
300

In a topology, the drift stream is declared with doa's own schema::

    drifts = topology.stream("drifts", schema="doa.DriftEvent", key="node")
    topology.detector("watch_loss", reads=scores, writes=drifts, signal="loss",
                      detector=drift.ADWIN())
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from river import base as river_base
from river import stats as river_stats

from doa.events import Event
from doa.node import Node, NodeKind, Stream, missing_fields, stream_names

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["DRIFT_SCHEMA", "DetectorSpec", "Watch", "describe", "detector_node", "signal_value",
           "statistics"]

DRIFT_SCHEMA = "doa.DriftEvent"
_SCALARS = (bool, int, float, str, type(None))


@dataclass
class Watch:
    """One detector and how many signal values it has seen (its drift events' ``position``).

    Attributes
    ----------
    detector : the River detector (a clone of the node's prototype)
    seen : signal values fed to it so far; skipped (missing or None) values are not counted
    """

    detector: Any
    seen: int = 0


@dataclass(frozen=True)
class DetectorSpec(NodeKind):
    """The kind of a detector node (see :class:`doa.node.NodeKind`).

    Attributes
    ----------
    reads, writes : the streams watched and the one drift stream
    signal, key, model_version_field : as given to :func:`detector_node`
    detector : the detector as drift events name it (see :func:`describe`)
    """

    kind = "detector"
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    signal: str
    detector: str
    key: str | None = None
    model_version_field: str | None = None

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.reads, self.writes

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """The signal is a field of every stream read; the drift stream is doa.DriftEvent."""
        out: list[str] = []
        for stream in self.reads:
            out += missing_fields(node, streams, stream, [self.signal], "signal")
        for stream in self.writes:
            declared = streams.schema(stream)
            if declared is not None and declared != DRIFT_SCHEMA:
                out.append(f"detector {node.name!r}: it writes {DRIFT_SCHEMA} records, stream "
                           f"{stream!r} has schema {declared}")
        return out

    def describe(self) -> dict[str, Any]:
        return {"detector": self.detector, "signal": self.signal, "key": self.key,
                "model_version_field": self.model_version_field,
                "streams": {"watched": list(self.reads), "drift": self.writes[0]}}


def describe(detector: Any) -> str:
    """The detector's class and its scalar constructor parameters, as in drift events.

    Examples
    --------
    >>> from river import drift
    >>> describe(drift.PageHinkley(threshold=20))
    "PageHinkley(min_instances=30, delta=0.005, threshold=20, alpha=0.9999, mode='both')"
    """
    params = ", ".join(f"{k}={v!r}" for k, v in detector._get_params().items()
                       if isinstance(v, _SCALARS))
    return f"{type(detector).__name__}({params})"


def statistics(detector: Any) -> dict[str, float]:
    """The detector's numeric state, as put in a drift event's ``statistics``.

    Taken generically: every public property of the detector's class and every instance
    attribute (a leading underscore dropped: ``_x_mean`` is ``x_mean``) whose value is an
    ``int`` or ``float``, or a River univariate statistic (``Mean``, ``Var``: its ``get()``;
    a statistic with a ``mean`` statistic inside, like ``Var``, also gives ``NAME_mean``).
    Left out: constructor parameters (they are in the ``detector`` text), booleans (the
    drift and warning flags), ``None``, sequences and other objects (windows, RNGs).

    Examples
    --------
    >>> from river import drift
    >>> ph = drift.PageHinkley()
    >>> for x in [1.0, 2.0, 3.0]:
    ...     _ = ph.update(x)
    >>> {name: round(value, 3) for name, value in statistics(ph).items()}
    {'x_mean': 2.0, 'sum_increase': 1.485, 'sum_decrease': 1.515, 'min_increase': -0.005, \
'max_decrease': 1.515}
    >>> sorted(statistics(drift.binary.EDDM()))
    ['error_distances', 'error_distances_mean', 'last_error', 'n', 'n_errors', 'p2s_prime_max']
    """
    params = detector._get_params()
    out: dict[str, float] = {}
    for attr, value in vars(detector).items():
        name = attr.lstrip("_")
        if name not in params:
            _put(out, name, value)
    cls = type(detector)
    for name in dir(cls):
        if not name.startswith("_") and name not in params and isinstance(
                inspect.getattr_static(cls, name, None), property):
            _put(out, name, getattr(detector, name))
    return out


def _put(out: dict[str, float], name: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, numbers.Real):
        out[name] = float(value)
    elif isinstance(value, river_stats.base.Univariate):
        got = value.get()
        if isinstance(got, numbers.Real) and not isinstance(got, bool):
            out[name] = float(got)
        inner = getattr(value, "mean", None)
        if isinstance(inner, river_stats.base.Univariate):
            _put(out, f"{name}_mean", inner)


def signal_value(value: Any, *, binary: bool = False) -> float | None:
    """The number fed to a detector for a signal field's ``value``; None: skip the event.

    ``None`` (or a missing field) is skipped and not counted; ``bool`` is 0.0 or 1.0; any real
    number is a float. A non-number, NaN or infinity raises (the runtime dead-letters that
    event and the detector is left as it was), as does anything but 0 or 1 for a binary
    detector (DDM, EDDM).

    Examples
    --------
    >>> signal_value(True), signal_value(3), signal_value(None)
    (1.0, 3.0, None)
    >>> signal_value(0.5, binary=True)
    Traceback (most recent call last):
    ...
    ValueError: a binary drift detector needs 0/1 or a boolean, got 0.5
    """
    if value.__class__ is float:
        x: float = value
    elif value is None:
        return None
    elif isinstance(value, numbers.Real):
        x = float(value)
    else:
        raise TypeError(f"a drift signal must be a number or a boolean, got "
                        f"{type(value).__name__} {value!r}")
    if not math.isfinite(x):
        raise ValueError(f"a drift signal must be finite, got {x}")
    if binary and x != 0.0 and x != 1.0:
        raise ValueError(f"a binary drift detector needs 0/1 or a boolean, got {value!r}")
    return x


def detector_node(name: str, reads: Stream | str | Iterable[Stream | str],
                  writes: Stream | str, *, signal: str, detector: Any, key: str | None = None,
                  model_version_field: str | None = None) -> Node:
    """A node feeding ``signal`` of every input event to a River drift detector.

    Parameters
    ----------
    name : the node's name (also the ``node`` of its drift events)
    reads : the stream(s) whose events carry the signal
    writes : the drift stream, declared with ``schema="doa.DriftEvent"``
    signal : the field watched: a number or boolean (see :func:`signal_value`)
    detector : a River drift detector used as a prototype: each input partition (or each
        key) gets its own ``detector.clone()``; the prototype itself is never updated.
        A detector with a ``seed`` parameter (KSWIN) needs one, so a replay fires at the
        same positions.
    key : a field of the input events: one detector per distinct value (as text; None
        values share one detector, and their drift events have ``key`` null)
    model_version_field : a field of the input events holding the model version that
        produced them (e.g. a prediction stream's); drift events carry it, else 0

    Returns
    -------
    Node
        ``kind="detector"`` (:meth:`doa.topology.topology.Topology.detector` declares one in a
        topology). Its ``spec`` is a :class:`DetectorSpec` (signal, detector, key, model
        version field), also in ``options`` for older code.
    """
    for method in ("update", "clone"):
        if not callable(getattr(detector, method, None)):
            raise TypeError(f"detector node {name!r}: detector must be a River drift detector "
                            f"(with .{method}()), got {type(detector).__name__}")
    params = detector._get_params()
    if "seed" in params and params["seed"] is None:
        raise ValueError(f"detector node {name!r}: {type(detector).__name__} has seed=None; "
                         "give it a seed so that a replay fires at the same positions")
    prototype = detector.clone()
    outputs = (writes,) if isinstance(writes, (Stream, str)) else tuple(writes)
    if len(outputs) != 1:
        raise ValueError(f"detector node {name!r} writes exactly one (drift) stream")
    text = describe(prototype)
    step = _make_step(name, signal, prototype, text, key, model_version_field)
    factory: Callable[[], Any] = dict if key is not None else lambda: Watch(prototype.clone())
    spec = DetectorSpec(stream_names(reads), stream_names(outputs), signal, text, key,
                        model_version_field)
    return spec.node(name, step, factory, options={
        "signal": signal, "detector": text, "key": key, "model_version_field": model_version_field})


def _make_step(name: str, signal: str, prototype: Any, text: str, key: str | None,
               version_field: str | None) -> Callable[[Any, list[Event]], tuple[Any, list[Any]]]:
    binary = isinstance(prototype, river_base.BinaryDriftDetector)

    def step(state: Any, batch: list[Event]) -> tuple[Any, list[Any]]:
        out: list[Any] = []
        watch: Watch = state
        k: str | None = None
        for event in batch:
            x = signal_value(event.get(signal), binary=binary)
            if x is None:
                continue
            if key is not None:
                value = event.get(key)
                k = None if value is None else str(value)
                watch = state.get(k)
                if watch is None:
                    watch = state[k] = Watch(prototype.clone())
            detector = watch.detector
            detector.update(x == 1.0 if binary else x)
            watch.seen += 1
            if detector.drift_detected:
                version = event.get(version_field) if version_field is not None else None
                out.append((event, {
                    "detector": text, "signal": signal, "node": name, "key": k,
                    "model_version": int(version or 0), "position": watch.seen,
                    "stream": event.stream, "partition": event.partition,
                    "offset": event.offset, "timestamp": event.timestamp,
                    "statistics": statistics(detector),
                }))
        return state, out

    step.__qualname__ = f"detector_node[{name}].step"
    return step
