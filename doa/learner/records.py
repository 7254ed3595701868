"""Small value helpers of the learner node: which features the model sees, how they are
logged and how predictions are scored.

A NaN or infinite feature is left out of what a River model sees (:func:`finite`): River
takes an absent feature as unknown, while one NaN would make every later prediction, and
the metric, NaN. The first time, per learner, a warning names the feature, the record and
where to look for its source (:func:`origin`: the ``doa lineage`` command that shows it);
a compiled model, which needs every feature, dead-letters the record with the same words.

Examples
--------
>>> from doa.events import Event
>>> event = Event({"id": 7, "temp": 21.5, "gap_ms": float("nan"), "status": "ok"},
...               stream="features", partition=0, offset=3, timestamp=0)
>>> x = features(event, None, ("id", None))
>>> x
{'temp': 21.5, 'gap_ms': nan}
>>> finite(x, event, "m", compiled=False, warned=set())
{'temp': 21.5}
>>> split({"amount": 3, "country": "FR", "night": True, "note": None})
({'amount': 3.0, 'night': 1.0}, {'country': 'FR'})
>>> split({"amount": 3.5, "zscore": -0.2})
({'amount': 3.5, 'zscore': -0.2}, {})
>>> argmax({"a": 0.2, "b": 0.8})
'b'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def argmax(proba: dict[Any, float]) -> Any:
    # River's Classifier.predict_one: max(y_pred, key=y_pred.get), None when empty.
    return max(proba, key=proba.__getitem__) if proba else None


def features(event: Any, fields: Sequence[str] | None, skip: Sequence[str | None]
             ) -> dict[str, Any]:
    """The features of ``event`` given to the model: ``fields``, or (None) every number and
    boolean but the fields in ``skip``."""
    if fields is not None:
        return {f: event[f] for f in fields}
    return {k: v for k, v in event.items()
            if k not in skip and isinstance(v, (int, float)) and v is not None}


def non_finite(x: dict[str, Any]) -> list[str]:
    """The features of ``x`` that are NaN or infinite floats."""
    return [k for k, v in x.items() if v.__class__ is float and not math.isfinite(v)]


def finite(x: dict[str, Any], event: Any, name: str, compiled: bool,
           warned: set[str]) -> dict[str, Any]:
    """``x`` without its NaN or infinite features, the first one per learner (``warned``)
    logged; a compiled model needs every feature: ValueError (this record a dead letter).

    Both say where the value came from (:func:`origin`).

    Examples
    --------
    >>> from doa.events import Event
    >>> e = Event({"t": float("nan")}, stream="features", partition=1, offset=9, timestamp=0)
    >>> finite({"t": float("nan")}, e, "m", compiled=True, warned=set())
    Traceback (most recent call last):
    ...
    ValueError: learner 'm': feature 't' is nan in features:1:9: fix the value at its source; \
this record is a dead letter (a compiled model takes every feature)
    where it came from: its writer sent it so (a NaN or infinite value in a node's \
input, or a kernel's output for a key with no value yet; `doa lineage features:1:9` shows the \
input); compiled=False would leave it out of this record's prediction

    The first line says it all, short: a dead letter's line in ``doa run`` shows only a
    message's first line, and at most 300 characters of it (:mod:`doa.runtime.tell`).
    """
    bad = non_finite(x)
    if not bad:
        return x
    what = (f"learner {name!r}: feature {bad[0]!r} is {x[bad[0]]} in stream {event.stream!r} "
            f"partition {event.partition} offset {event.offset}, {origin(event)}: fix the "
            "value at its source")
    if compiled:
        raise dead_feature(f"learner {name!r}", bad[0], x[bad[0]], event,
                           "a compiled model takes every feature",
                           f"{origin(event)}; compiled=False would leave it out of this "
                           "record's prediction")
    warn_once(warned, "feature", f"{what}; meanwhile it is left out of what the model sees, "
              "as River takes an absent feature; told once per learner")
    return {k: v for k, v in x.items() if k not in bad}


def dead_feature(who: str, field: str, value: Any, event: Any, because: str,
                 where: str | None) -> ValueError:
    """The error that makes ``event`` a dead letter for its feature ``field`` (``value`` as
    shown): a short first line saying it all (``doa run`` shows a letter's first line only,
    :mod:`doa.runtime.tell`), where the value came from (``where``) on a second.

    >>> from doa.events import Event
    >>> e = Event({}, stream="rides", partition=0, offset=2, timestamp=0)
    >>> print(dead_feature("model 'price'", "km", "null", e, "a model node scores finite "
    ...                    "numbers only", None))
    model 'price': feature 'km' is null in rides:0:2: fix the value at its source; this \
record is a dead letter (a model node scores finite numbers only)
    """
    first = (f"{who}: feature {field!r} is {value} in {event.stream}:{event.partition}:"
             f"{event.offset}: fix the value at its source; this record is a dead letter "
             f"({because})")
    return ValueError(first if where is None else f"{first}\nwhere it came from: {where}")


def origin(event: Any) -> str:
    """Where to look for the source of a record's values: the ``doa lineage`` command that
    shows the input it was computed from (a step gets no lineage headers).

    Examples
    --------
    >>> from doa.events import Event
    >>> origin(Event({}, stream="features", partition=0, offset=41, timestamp=0))
    "its writer sent it so (a NaN or infinite value in a node's input, or a \
kernel's output for a key with no value yet; `doa lineage features:0:41` shows the input)"
    """
    where = f"{event.stream}:{event.partition}:{event.offset}"
    return (f"its writer sent it so (a NaN or infinite value in a node's "
            f"input, or a kernel's output for a key with no value yet; `doa lineage "
            f"{where}` shows the input)")


def metric_value(metric: Any, name: str, labels: int, warned: set[str]) -> float:
    """The metric's value as a ``doa.Metric`` record has it (NaN: none yet); a NaN or
    infinite value is logged, once per learner (``warned``)."""
    value = metric.get()
    if value is None:
        return math.nan
    if not math.isfinite(value):
        warn_once(warned, "metric", f"learner {name!r}: its {type(metric).__name__} is "
                  f"{value} after {labels} labels: a prediction or a label was not a finite "
                  "number; told once per learner")
    return float(value)


def warn_once(warned: set[str], what: str, message: str) -> None:
    """Log ``message`` unless ``what`` is in ``warned`` already (then add it)."""
    if what not in warned:
        warned.add(what)
        log.warning("%s", message)


def split(x: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Features as logged: numbers (and booleans, as 0/1) apart from everything else."""
    for v in x.values():
        if v.__class__ is not float:
            break
    else:  # all floats already (a kernel's features): a copy, ~5x cheaper than the loop below
        return dict(x), {}
    numeric: dict[str, float] = {}
    categories: dict[str, str] = {}
    for k, v in x.items():
        if isinstance(v, (int, float)):
            numeric[k] = float(v)
        elif v is not None:
            categories[k] = str(v)
    return numeric, categories


def key(event: Any, key: str | None) -> str | None:
    return None if key is None or event.get(key) is None else str(event[key])


def scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def error(y: Any, label_pred: Any, y_pred: Any, correct: bool | None,
           anomaly: bool) -> float:
    if correct is not None:
        return 0.0 if correct else 1.0
    prediction = y_pred if anomaly else label_pred
    try:
        return abs(float(y) - float(prediction))
    except (TypeError, ValueError):
        return math.nan
