"""Offline checks of nodes that pair labels with predictions: model nodes with ``labels=``
and learners.

- :func:`copartition_problems`: a node pairs a label with its prediction inside one input
  partition, so the label stream must put each label on the partition of the record it is
  for. Two streams keyed by different fields do not: 206 of 400 labels keyed by ``ride_id``
  waited on the wrong partition for records keyed by ``zone``, then came out as ``unknown``.
  Like a learner's keyed drift stream (:func:`doa.learner.checks.drift_problems`), it is
  refused. With one partition every label meets its prediction; where the records of an
  unkeyed stream go is its writer's choice (a node keeps its input's partition), which a
  topology does not say: neither is refused.
  Streams of different partition counts are refused by :func:`doa.topology.validate.problems`.
- :func:`metric_problems`: a model node's metric must be of the kind its label field is
  (a classification metric for a class, a regression metric for a number), as a learner's
  must fit its model (:func:`doa.learner.checks.kinds`): ``Accuracy`` on a ``double`` fare
  counted every outcome wrong.

Examples
--------
>>> from river import metrics
>>> from doa import Labels, Topology
>>> class Fare:
...     def predict_batch(self, X):
...         return X[:, 0] * 2.5
>>> t = Topology("rides")
>>> _ = t.stream("requests", schema="doa.Metric", key="model", partitions=2)
>>> _ = t.stream("truth", schema="doa.Metric", key="timestamp", partitions=2)
>>> _ = t.stream("prices", schema="doa.Prediction")
>>> node = t.model("price", reads="requests", writes="prices", model=Fare(),
...                features=["value"], join="labels", versions=None,
...                labels=Labels("truth", label="value", metric=metrics.Accuracy()))
>>> for line in copartition_problems(node, TopologyStreams(t)):
...     print(line)  # doctest: +NORMALIZE_WHITESPACE
model 'price': its labels stream 'truth' is keyed by 'timestamp' and its input 'requests'
by 'model' (2 partitions): a label would wait on another partition than its prediction, and
come out as unknown; key both streams by the same field ('truth' by 'model', or 'requests' by
'timestamp')
>>> metric_problems(node, TopologyStreams(t))  # doctest: +NORMALIZE_WHITESPACE
["model 'price': metric Accuracy is a classification metric and its label field 'value' of
stream 'truth' is double: every outcome would count as wrong; give a regression metric
(e.g. metrics.MAE())"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from doa.learner.checks import CLASSES, NUMBERS, base_types, metric_kind
from doa.learner.spec import LearnerSpec
from doa.model.spec import ModelSpec
from doa.node import shown_type, stream_name
from doa.topology.validate_nodes import TopologyStreams

if TYPE_CHECKING:
    from doa.node import Node

__all__ = ["copartition_problems", "labelled_problems", "metric_problems"]


def labelled_problems(node: Node, streams: TopologyStreams) -> list[str]:
    """Both checks of this module for ``node`` (none for a node that takes no labels)."""
    return [*copartition_problems(node, streams), *metric_problems(node, streams)]


def _pairing(node: Node) -> tuple[str, str, tuple[str, ...], str] | None:
    """``(kind, label stream, the streams predicted on, their role)`` of a node pairing
    labels with predictions; None for any other node."""
    spec = node.spec
    if isinstance(spec, ModelSpec) and spec.labels is not None:
        return "model", str(stream_name(spec.labels.stream)), spec.reads, "input"
    if isinstance(spec, LearnerSpec) and spec.labels is not None:
        return "learner", spec.labels, (spec.features,), "features stream"
    return None


def copartition_problems(node: Node, streams: TopologyStreams) -> list[str]:
    """One line per stream predicted on that is keyed by another field than the labels
    stream, both having more than one (and the same number of) partitions."""
    pairing = _pairing(node)
    labels = None if pairing is None else streams.partitioning(pairing[1])
    if pairing is None or labels is None or labels[0] is None or labels[1] <= 1:
        return []
    kind, label_stream, inputs, role = pairing
    out = []
    for stream in inputs:
        layout = streams.partitioning(stream)
        if layout is None or layout[0] is None or layout[0] == labels[0] \
                or layout[1] != labels[1]:
            continue
        fixes = [f"{s!r} by {k!r}" for s, k, other in ((label_stream, layout[0], label_stream),
                                                     (stream, labels[0], stream))
                 if k in (streams.fields(other) or {})]
        fix = f" ({', or '.join(fixes)})" if fixes else (
            ", one whose value a label and its record share")
        out.append(f"{kind} {node.name!r}: its labels stream {label_stream!r} is keyed by "
                   f"{labels[0]!r} and its {role} {stream!r} by {layout[0]!r} ({labels[1]} "
                   "partitions): a label would wait on another partition than its "
                   "prediction, and come out as unknown; key both streams by the same field"
                   f"{fix}")
    return out


def metric_problems(node: Node, streams: TopologyStreams) -> list[str]:
    """A model node's classification metric on a label field that is not a class (a
    ``float``, ``double``), or its regression metric on one that is not a number (a
    ``boolean``, ``string``, ``enum``). Learners are checked when declared."""
    spec = node.spec
    if not isinstance(spec, ModelSpec) or spec.labels is None:
        return []
    stream = str(stream_name(spec.labels.stream))
    avro: Any = (streams.fields(stream) or {}).get(spec.labels.label)
    kind = metric_kind(spec.labels.metric)
    if avro is None or kind == "a metric":
        return []
    types = base_types(avro)
    fits, other, example = ((CLASSES, "a regression metric", "metrics.MAE()")
                            if kind == "a classification metric" else
                            (NUMBERS, "a classification metric", "metrics.Accuracy()"))
    if types <= fits:
        return []
    effect = ("every outcome would count as wrong" if kind == "a classification metric" else
              "it measures how far a number is from another")
    return [f"model {node.name!r}: metric {type(spec.labels.metric).__name__} is {kind} and "
            f"its label field {spec.labels.label!r} of stream {stream!r} is "
            f"{shown_type(avro)}: {effect}; give {other} (e.g. {example})"]
