"""What a learner's declaration must get right, said in one line before anything runs.

- :func:`kinds`: the metric works with the model, and a challenger is of the model's kind
  (checked when the learner is declared);
- :func:`label_problems`: a regressor learns a number, a classifier a class (``doa check``:
  the label field's declared type);
- :func:`drift_problems`: a drift stream the learner reads must not be keyed when it has
  several partitions (``doa check``; :func:`doa.learner.versions.on_drift` checks each event);
- :func:`declaring`: a mistake found while a learner is declared is a
  :class:`DeclarationError` naming the line of the topology that declared it;
- :func:`metric_kind`, :func:`base_types`, :data:`NUMBERS` and :data:`CLASSES`: what these
  checks compare, shared with a model node's (:mod:`doa.topology.labelled`).

Examples
--------
>>> from river import linear_model, metrics
>>> kind_of(linear_model.LinearRegression()), kind_of(linear_model.LogisticRegression())
('regressor', 'classifier')
>>> kinds("m", linear_model.LogisticRegression(), metrics.MAE())
Traceback (most recent call last):
...
ValueError: learner 'm': metric MAE is a regression metric and the model LogisticRegression \
is a classifier; give a metric for a classifier (e.g. metrics.Accuracy()) or a regressor
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doa.errors import DoaError
from doa.node import shown_type

if TYPE_CHECKING:
    from doa.learner.spec import LearnerSpec
    from doa.node import StreamInfo

__all__ = ["CLASSES", "NUMBERS", "DeclarationError", "base_types", "declaring", "drift_problems",
           "kind_of", "kinds", "label_problems", "metric_kind"]

# a metric a model of each kind takes, for the messages
_EXAMPLE = {"classifier": "metrics.Accuracy()", "regressor": "metrics.MAE()",
            "anomaly detector": "metrics.ROCAUC()"}
# the Avro types (base_types) of a label a regressor learns and a regression metric measures,
# and of one a classifier learns and a classification metric counts
NUMBERS = frozenset({"int", "long", "float", "double"})
CLASSES = frozenset({"int", "long", "string", "boolean", "enum"})
_DOA = tuple({str(p.parent.parent) + os.sep  # doa's own files, as imported and resolved
              for p in (Path(__file__), Path(__file__).resolve())})


class DeclarationError(DoaError, TypeError, ValueError):
    """A learner declared wrongly, ending with the topology's line that declared it.

    Still a ``TypeError`` and a ``ValueError`` (what the declaration raised before), and a
    :class:`doa.errors.DoaError`, which ``doa check`` prints as it is, one line.
    """


def kind_of(model: Any) -> str:
    """``classifier``, ``regressor``, ``anomaly detector`` or ``model`` (anything else)."""
    from river import base

    for cls, name in ((base.Classifier, "classifier"), (base.Regressor, "regressor"),
                      (base.AnomalyDetector, "anomaly detector")):
        if isinstance(model, cls):
            return name
    return "model"


def metric_kind(metric: Any) -> str:
    """What a River metric measures, as a message says it.

    Parameters
    ----------
    metric : a River metric (anything else is ``"a metric"``)

    Returns
    -------
    ``"a regression metric"``, ``"a classification metric"`` or ``"a metric"``.

    Examples
    --------
    >>> from river import metrics
    >>> metric_kind(metrics.MAE()), metric_kind(metrics.Accuracy()), metric_kind(None)
    ('a regression metric', 'a classification metric', 'a metric')
    """
    from river.metrics import base

    if isinstance(metric, base.RegressionMetric):
        return "a regression metric"
    if isinstance(metric, base.ClassificationMetric):
        return "a classification metric"
    return "a metric"


def kinds(name: str, model: Any, metric: Any, challenger: Any = None) -> None:
    """Raise ValueError (one line) unless ``metric`` works with ``model`` and ``challenger``
    (None: no challenger) is of the same kind as ``model``."""
    works = getattr(metric, "works_with", None)
    if not callable(works):
        raise ValueError(f"learner {name!r}: metric {metric!r} is not a River metric (it has "
                         "no works_with); give one from river.metrics")
    kind = kind_of(model)
    if not works(model):
        what = _EXAMPLE.get(kind)
        fix = f"give a metric for {_a(kind)} (e.g. {what}) or " if what else "give "
        other = {"a regression metric": " a regressor", "a classification metric":
                 " a classifier"}.get(metric_kind(metric), " a model it works with")
        raise ValueError(f"learner {name!r}: metric {type(metric).__name__} is "
                         f"{metric_kind(metric)} and the model {model} is {_a(kind)}; "
                         f"{fix}{other.strip()}")
    if challenger is not None and kind_of(challenger) != kind:
        raise ValueError(f"learner {name!r}: challenger {challenger} is a "
                         f"{kind_of(challenger)}, not the same kind as the model {model} "
                         f"({_a(kind)})")
    if challenger is not None and not works(challenger):
        raise ValueError(f"learner {name!r}: metric {type(metric).__name__} does not work "
                         f"with the challenger {challenger}")


def base_types(avro: Any) -> set[str]:
    """The Avro types a field may hold, null left out, to compare with :data:`NUMBERS` and
    :data:`CLASSES`.

    Parameters
    ----------
    avro : a field's Avro type: a name, a union (list) or a complex type (dict)

    Returns
    -------
    The type names, ``"enum"`` for any enum.

    Examples
    --------
    >>> sorted(base_types(["null", "double", {"type": "enum", "name": "Side",
    ...                                        "symbols": ["buy", "sell"]}]))
    ['double', 'enum']
    >>> base_types(["null", "long"]) <= NUMBERS
    True
    """
    if isinstance(avro, list):
        return set().union(*(base_types(t) for t in avro if t != "null"))
    if isinstance(avro, dict):
        kind = avro.get("type")
        return {"enum"} if kind == "enum" else base_types(kind)
    return {str(avro)}


def label_problems(spec: LearnerSpec, streams: StreamInfo) -> list[str]:
    """A regressor's label field must be a number (int, long, float, double; nullable), a
    classifier's a class (string, boolean, int, long, enum; nullable).

    >>> from doa.learner.spec import Inputs, Outputs, resolve
    >>> from river import linear_model
    >>> class Info:
    ...     def fields(self, stream): return {"id": "long", "y": ["null", "string"]}
    ...     def schema(self, stream): return None
    >>> spec = resolve("m", reads=Inputs("xs", "ys", label="y"), writes=Outputs("preds"),
    ...                model=linear_model.LinearRegression())
    >>> label_problems(spec, Info())
    ["learner 'm': label field 'y' of stream 'ys' is null | string: a regressor \
(LinearRegression) learns a number (int, long, float, double); a class needs a classifier"]
    """
    fields = (streams.fields(spec.labels) if spec.labels is not None else None) or {}
    if spec.label not in fields or spec.model_kind not in ("regressor", "classifier"):
        return []
    types = base_types(fields[spec.label])
    where = (f"learner {spec.name!r}: label field {spec.label!r} of stream {spec.labels!r} is "
             f"{shown_type(fields[spec.label])}: a {spec.model_kind} ({spec.model_name})")
    if spec.model_kind == "regressor" and not types <= NUMBERS:
        return [f"{where} learns a number (int, long, float, double); a class needs a "
                "classifier"]
    if spec.model_kind == "classifier" and not types <= CLASSES:
        return [f"{where} learns a class (string, boolean, int, long, enum); a number to "
                "predict needs a regressor"]
    return []


def drift_problems(spec: LearnerSpec, streams: StreamInfo) -> list[str]:
    """A keyed drift stream of several partitions puts every drift event on its key's
    partition, whichever learner partition's records made the detector fire."""
    partitioning = getattr(streams, "partitioning", None)  # optional: doa.node.StreamInfo
    layout = None if spec.drift is None or partitioning is None else partitioning(spec.drift)
    if layout is None or layout[0] is None or layout[1] <= 1:
        return []
    key, partitions = layout
    return [f"learner {spec.name!r}: its drift stream {spec.drift!r} has key {key!r} "
            f"and {partitions} partitions: each drift event would go to its key's "
            "partition, not to the learner of the partition that fired it; declare the stream "
            "with key=None (a drift event then stays on its input's partition)"]


def _user_line() -> str:
    """`` (file.py, line N)``: the innermost frame outside doa (the topology's line)."""
    for frame, line in traceback.walk_stack(None):
        filename = frame.f_code.co_filename
        if not filename.startswith(_DOA) and filename != contextlib.__file__:
            return "" if filename.startswith("<") else f" ({Path(filename).name}, line {line})"
    return ""


@contextlib.contextmanager
def declaring() -> Iterator[None]:
    """Re-raise a ``TypeError`` or ``ValueError`` of a learner's declaration as a
    :class:`DeclarationError` ending with the topology's line."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise DeclarationError(f"{exc}{_user_line()}") from exc


def _a(kind: str) -> str:
    """``kind`` with its article: ``a regressor``, ``an anomaly detector``.

    >>> _a("classifier"), _a("anomaly detector")
    ('a classifier', 'an anomaly detector')
    """
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
