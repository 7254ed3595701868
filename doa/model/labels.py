"""Delayed labels for a model node: predictions wait for their label, then become outcomes
and a running metric per version; a challenger is promoted by a policy.

A model node given ``labels=`` keeps each prediction (of the live version, and of the
candidate when one runs) under the record's ``join`` value. When the label with that join
value comes (the runtime merges the label stream with the inputs by timestamp, inputs first
on ties), the live prediction becomes a ``doa.Outcome`` and each version's River metric is
updated with its own prediction, on the *same* label. While a candidate runs, only labels of
records both versions scored count (a race: both metrics start afresh when it begins). A
:class:`Promote` policy decides once, when the candidate has ``after_labels`` labels:
promote it if it beats the live version by ``margin``, else reject it; the decision is a
``doa.ModelEvent``.

Examples
--------
>>> from river import metrics
>>> policy = Promote(margin=0.02, after_labels=500)
>>> policy.beats(metrics.Accuracy(), live=0.80, candidate=0.83)
True
>>> policy.beats(metrics.MAE(), live=10.0, candidate=9.99)  # smaller is better, too little
False
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doa.learner import held
from doa.learner import records as values
from doa.model import versions

if TYPE_CHECKING:
    from doa.model.spec import ModelSpec
    from doa.node import Stream

__all__ = ["Labels", "Promote", "deciding", "declared_metric", "expire", "on_label", "track"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Promote:
    """Promote the candidate when, over its first ``after_labels`` labels, its metric beats
    the live version's on the same labels by at least ``margin`` (in the metric's units,
    in the metric's better direction); else reject it. Decided once per candidate."""

    margin: float = 0.0
    after_labels: int = 500

    def __post_init__(self) -> None:
        if self.after_labels < 1 or self.margin < 0:
            raise ValueError(f"Promote: after_labels must be >= 1 and margin >= 0, got "
                             f"{self.after_labels} and {self.margin}")

    def beats(self, metric: Any, *, live: float, candidate: float) -> bool:
        """Whether ``candidate`` beats ``live`` by the margin (``metric`` says which way)."""
        gain = candidate - live if metric.bigger_is_better else live - candidate
        return gain > 0 and gain >= self.margin

    def verdict(self, metric: Any, versions: tuple[int, int], values: tuple[float, float],
                labels: int) -> tuple[bool, str]:
        """Promote or not, and why, for the (live, candidate) ``versions`` whose ``metric``
        (a River metric) has ``values`` over ``labels`` shared labels."""
        (live, candidate), (a, b) = versions, values
        why = (f"policy: {type(metric).__name__} {b:.4f} (v{candidate}) vs {a:.4f} "
               f"(v{live}) over {labels} labels, margin {self.margin}")
        return self.beats(metric, live=a, candidate=b), why


@dataclass(frozen=True)
class Labels:
    """Where a model node's labels come from and where what it learns of them goes.

    Parameters
    ----------
    stream : the label stream; its records carry the node's ``join`` field and ``label``
    label : the field holding the truth
    metric : a River metric (default ``Accuracy``), updated with each version's prediction
    outcomes, metrics, unmatched : streams of ``doa.Outcome`` (the live version's),
        ``doa.Metric`` (every ``every`` labels, per version) and ``doa.UnmatchedLabel``
        (labels matching no waiting prediction, predictions evicted); None: not written
    every : labels between two ``doa.Metric`` records of a version
    max_pending : predictions waiting for a label, and labels waiting for their record;
        beyond it the oldest is evicted (reported as ``evicted`` or ``overflow``)
    label_wait_ms : a label whose record has not been scored yet is held until the inputs'
        event time passes the label's by this much, then reported as ``unknown``
    """

    stream: Stream | str
    label: str = "label"
    metric: Any = None
    outcomes: Stream | str | None = None
    metrics: Stream | str | None = None
    unmatched: Stream | str | None = None
    every: int = 100
    max_pending: int = 100_000
    label_wait_ms: int = 60_000


def track(spec: ModelSpec, state: dict[str, Any], event: Any, key: str | None,
          predictions: Mapping[int, Any], out: list[Any]) -> None:
    """Keep a record's predictions (live version first) until its label comes."""
    assert spec.labels is not None
    join = str(event[spec.join]) if spec.join is not None else event.id.hex()
    pending = state["pending"]
    pending.pop(join, None)  # a repeated join value: its newest prediction waits
    pending[join] = (event.timestamp, state["version"], key, dict(predictions))
    if len(pending) > spec.labels.max_pending:
        old, _ = pending.popitem(last=False)
        _unmatched(spec, event, out, "evicted", old, f"{spec.labels.max_pending} predictions "
                   "wait for their label already")


def deciding(spec: ModelSpec, state: dict[str, Any], event: Any) -> bool:
    """Whether this label makes the promotion policy decide (the node scores the records
    before it with the versions as they are, first)."""
    race = state.get("race")
    if race is None or spec.promote_when is None:
        return False
    waiting = state["pending"].get(str(event[spec.join]))
    return (waiting is not None and race[1] in waiting[3] and race[0] in waiting[3]
            and state["labels"][race[1]] + 1 >= spec.promote_when.after_labels)


def on_label(spec: ModelSpec, state: dict[str, Any], event: Any, out: list[Any],
             anchor: Any = None, warned: set[str] | None = None) -> None:
    """Match a label with its waiting predictions; outcome, metrics, maybe a decision. A
    label whose record has not been scored yet is held until it is (:mod:`doa.learner.held`);
    outputs hang on ``anchor`` (default: the label itself). One stamped long before its
    record is joined, counted and told once per node (``warned``: the node's set of what it
    has told; :func:`doa.learner.held.before_prediction`)."""
    labels = spec.labels
    assert labels is not None
    declared_metric(spec, state, event.partition)
    join = str(event[spec.join])
    waiting = state["pending"].pop(join, None)
    if waiting is None:
        held.hold(state["early"], join, event, bound=labels.max_pending,
                  report=_reporter(spec, out))
        return
    event, label = (event if anchor is None else anchor), event
    predicted_at, live, key, predictions = waiting
    held.before_prediction(state, label, predicted_at, wait_ms=labels.label_wait_ms,
                           who=f"model {spec.name!r}", join=(str(spec.join), join),
                           warned=set() if warned is None else warned)
    y = label[labels.label]
    metric = state["metrics"]
    classifier = bool(getattr(labels.metric, "requires_labels", False))
    if labels.outcomes is not None:
        y_pred = predictions[live]
        correct = (y_pred == y) if classifier else None
        out.append((event, labels.outcomes, {
            "join": join, "key": key, "model": spec.name, "model_version": live,
            "prediction": values.scalar(y_pred), "label": values.scalar(y), "correct": correct,
            "error": values.error(y, y_pred, y_pred, correct, False),
            "delay_ms": label.timestamp - predicted_at, "timestamp": label.timestamp}))
    race = state.get("race")
    if race is not None:
        counted = [v for v in race if v in predictions]
        counted = counted if len(counted) == 2 else []  # a race counts shared labels only
    else:
        counted = [live] if live in metric else []
    for v in counted:
        if predictions[v] is not None:
            metric[v].update(y_true=y, y_pred=predictions[v])
        state["labels"][v] += 1
        if labels.metrics is not None and state["labels"][v] % labels.every == 0:
            out.append((event, labels.metrics, _metric_record(spec, state, v, label)))
    if race is not None and counted and spec.promote_when is not None \
            and state["labels"][race[1]] >= spec.promote_when.after_labels:
        _decide(spec, state, event, label, out)


def declared_metric(spec: ModelSpec, state: dict[str, Any], partition: int) -> None:
    """The declared metric wins over a restored state's: a version whose metric is of another
    class (a snapshot written before the topology changed ``Labels(metric=...)``) starts a
    fresh one of the declared class, its labels counted from 0, said once in the log.

    Examples
    --------
    >>> from river import metrics
    >>> from doa.model.spec import ModelSpec
    >>> spec = ModelSpec("price", ("rides",), "prices", ("km",), "ride_id", None, "?", "?",
    ...                  labels=Labels("fares", "fare", metrics.MAE()))
    >>> state = {"metrics": {1: metrics.Accuracy()}, "labels": {1: 400}}
    >>> declared_metric(spec, state, 0)
    >>> type(state["metrics"][1]).__name__, state["labels"][1]
    ('MAE', 0)
    """
    assert spec.labels is not None
    declared = spec.labels.metric
    stale = {v: m for v, m in state["metrics"].items() if type(m) is not type(declared)}
    if not stale:
        return
    counted = ", ".join(f"v{v}: {type(m).__name__} of {state['labels'].get(v, 0)} labels"
                        for v, m in stale.items())
    for v in stale:
        state["metrics"][v] = declared.clone()
        state["labels"][v] = 0
    log.warning("model %r partition %d: the topology declares metric %s, its restored state "
                "had another (%s): a fresh %s starts now", spec.name, partition,
                type(declared).__name__, counted, type(declared).__name__)


def _decide(spec: ModelSpec, state: dict[str, Any], event: Any, label: Any,
            out: list[Any]) -> None:
    assert spec.labels is not None and spec.promote_when is not None
    live, candidate = race = state["race"]
    values_ = (_value(state["metrics"][live]), _value(state["metrics"][candidate]))
    better, why = spec.promote_when.verdict(spec.labels.metric, race, values_,
                                            state["labels"][candidate])
    here = {"node": spec.name, "partition": label.partition, "timestamp": label.timestamp}
    decision = (versions.promote if better else versions.reject)(state, reason=why, **here)
    if spec.models is not None:
        out.append((event, spec.models, decision))


def _value(metric: Any) -> float:
    value = metric.get()
    return math.nan if value is None else float(value)


def _metric_record(spec: ModelSpec, state: dict[str, Any], version: int,
                   label: Any) -> dict[str, Any]:
    return {"model": spec.name, "model_version": version,
            "metric": type(state["metrics"][version]).__name__,
            "value": _value(state["metrics"][version]), "labels": state["labels"][version],
            "timestamp": label.timestamp, "partition": label.partition}


def expire(spec: ModelSpec, state: dict[str, Any], event: Any, out: list[Any]) -> None:
    """Report the held labels that records at ``event``'s time prove can match nothing."""
    assert spec.labels is not None
    held.expire(state["early"], event, wait_ms=spec.labels.label_wait_ms,
                report=_reporter(spec, out))


def _reporter(spec: ModelSpec, out: list[Any]) -> held.Report:
    return lambda event, reason, join, detail, anchor: _unmatched(spec, event, out, reason,
                                                                  join, detail, anchor)


def _unmatched(spec: ModelSpec, event: Any, out: list[Any], reason: str, join: str,
               detail: str, anchor: Any = None) -> None:
    assert spec.labels is not None
    if spec.labels.unmatched is None:  # never the record in hand (doa.learner.held)
        held.dropped(f"model node {spec.name!r}", event, reason, join, detail,
                     "prediction" if reason == "evicted" else "label")
        return
    out.append((event if anchor is None else anchor, spec.labels.unmatched, {
        "reason": reason, "model": spec.name, "join": join, "stream": event.stream,
        "partition": event.partition, "offset": event.offset, "timestamp": event.timestamp,
        "detail": detail}))
