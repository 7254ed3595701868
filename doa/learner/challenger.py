"""A challenger learner: a second River model learning beside the live one on the same stream.

``topology.learner(..., challenger=MODEL, shadow=STREAM, promote_when=doa.Promote(...))``
declares one. Each input partition's state gets its own clone under a version number of its
own (never reused), announced by a ``candidate`` ``doa.ModelEvent`` with the first records
the node sees. Then, in the learner's order of calls:

- on a feature record it predicts beside the live model on the same features; its
  prediction goes to the ``shadow`` stream only, never to ``predictions``;
- on a label both learn on the same logged features and both are scored on that label: the
  challenger's own metric, and a *race* metric of the live model on the same labels (the
  live model's own metric stays River's progressive validation of it, challenger or not);
- a :class:`doa.Promote` policy decides once the challenger has ``after_labels`` labels:
  promoted, it becomes the live model under its own version number, with its metric; else
  it is rejected and stops. ``doa model promote`` (a ``promote`` command on the control
  stream) promotes it at once. Each decision is a ``doa.ModelEvent``.

Its ``doa.Metric`` records (every ``metrics_every`` labels) carry its version, beside the
live model's, so ``doa model compare`` shows the two side by side.

Examples
--------
>>> from collections import OrderedDict
>>> from river import linear_model, metrics
>>> state = {"model": linear_model.LinearRegression(), "metric": metrics.MAE(),
...          "version": 1, "labels": 0, "versions": OrderedDict({1: {}})}
>>> start(state, linear_model.LinearRegression(), metrics.MAE())
>>> state["challenger"]["version"], state["challenger"]["labels"]
(2, 0)
>>> score(state, y=3.0, live=1.0, shadow=2.5)
>>> state["challenger"]["metric"].get(), state["challenger"]["race"].get()
(0.5, 2.0)
"""

from __future__ import annotations

import math
from typing import Any

from doa.learner.records import argmax
from doa.learner.versions import next_version

__all__ = ["announce", "decision", "event", "on_label", "promote", "reject", "score", "start",
           "value"]


def start(state: dict[str, Any], prototype: Any, metric: Any) -> None:
    """Add the challenger to a fresh state: its clone, its metric and the live model's race
    metric (both on the same labels), under a new version number."""
    state["challenger"] = {"model": prototype.clone(), "metric": metric.clone(),
                           "race": metric.clone(), "labels": 0,
                           "version": next_version(state), "announced": False}


def _value(metric: Any) -> float | None:
    got = metric.get()
    return None if got is None or (isinstance(got, float) and math.isnan(got)) else float(got)


def value(metric: Any) -> float:
    """A metric's value for a ``doa.Metric`` record (NaN before any label)."""
    got = _value(metric)
    return math.nan if got is None else got


def event(state: dict[str, Any], name: str, action: str, version: int, from_version: int,
          reason: str, partition: int, timestamp: int) -> dict[str, Any]:
    """A ``doa.ModelEvent`` of the race (labels and metric: the challenger's)."""
    ch = state["challenger"]
    return {"model": name, "action": action, "version": version, "from_version": from_version,
            "reason": reason, "labels": ch["labels"], "metric": _value(ch["metric"]),
            "partition": partition, "timestamp": timestamp, "blob": None}


def announce(state: dict[str, Any], name: str, model: Any, anchor: Any) -> dict[str, Any]:
    """The ``candidate`` event, once, with the first record the node sees."""
    ch = state["challenger"]
    ch["announced"] = True
    return event(state, name, "candidate", ch["version"], state["version"],
                 f"challenger {model} learns beside the live model", anchor.partition,
                 anchor.timestamp)


def score(state: dict[str, Any], *, y: Any, live: Any, shadow: Any) -> None:
    """Score both models on one label: the challenger's prediction ``shadow`` on its metric,
    the live model's ``live`` on the race metric."""
    ch = state["challenger"]
    for metric, y_pred in ((ch["metric"], shadow), (ch["race"], live)):
        if y_pred is not None and y_pred != {}:
            metric.update(y_true=y, y_pred=metric_input(metric, y_pred))


def metric_input(metric: Any, y_pred: Any) -> Any:
    """What ``metric`` is updated with for a prediction ``y_pred``: a classifier's
    probabilities, or their most probable label for a metric that needs labels (River's
    ``progressive_val_score`` calls ``predict_one`` for those: the same label, River's
    ``Classifier.predict_one`` being ``max(proba, key=proba.get)``).

    >>> from river import metrics
    >>> metric_input(metrics.Accuracy(), {False: 0.3, True: 0.7})
    True
    >>> metric_input(metrics.ROCAUC(), {False: 0.3, True: 0.7})
    {False: 0.3, True: 0.7}
    """
    if isinstance(y_pred, dict) and metric.requires_labels:
        return argmax(y_pred)
    return y_pred


def on_label(state: dict[str, Any], spec: Any, ops: Any, out: list[Any], *, label: Any,
             anchor: Any, y: Any, live: list[Any], shadow: list[Any]) -> tuple[bool, str] | None:
    """Count a label for the race when the running challenger predicted on its record
    (``shadow``: its cell and version); both are scored on it when the planned calls run
    (``ops.later``), and its ``doa.Metric`` record. The policy's verdict when it decides on
    this label (the planned calls are run first), else None."""
    ch = state.get("challenger")
    if ch is None or not shadow or shadow[1] != ch["version"]:
        return None
    ch["labels"] += 1
    labels, version = ch["labels"], ch["version"]

    def effects() -> None:
        score(state, y=y, live=live[0], shadow=shadow[0][0])
        if spec.metrics is not None and labels % spec.metrics_every == 0:
            out.append((anchor, spec.metrics, {
                "model": spec.name, "model_version": version,
                "metric": type(ch["metric"]).__name__,
                "value": value(ch["metric"]), "labels": labels,
                "timestamp": label.timestamp, "partition": label.partition}))

    ops.later(effects)
    policy = spec.promote_when
    if policy is None or labels < policy.after_labels:
        return None
    ops.flush()  # both metrics as they are after this label
    return decision(state, policy)


def decision(state: dict[str, Any], policy: Any) -> tuple[bool, str]:
    """The policy's verdict on the race so far, and why."""
    ch = state["challenger"]
    verdict: tuple[bool, str] = policy.verdict(
        ch["metric"], (state["version"], ch["version"]), (value(ch["race"]),
                                                          value(ch["metric"])), ch["labels"])
    return verdict


def promote(state: dict[str, Any], name: str, *, reason: str, partition: int,
            timestamp: int) -> dict[str, Any]:
    """Make the challenger the live model (its version, its metric); the ``promoted`` event.
    The caller keeps the model as a version and gives the runtime the model to run."""
    ch = state["challenger"]
    change = event(state, name, "promoted", ch["version"], state["version"], reason,
                   partition, timestamp)
    state["model"], state["metric"], state["version"] = ch["model"], ch["metric"], \
        ch["version"]
    del state["challenger"]
    return change


def reject(state: dict[str, Any], name: str, *, reason: str, partition: int,
           timestamp: int) -> dict[str, Any]:
    """Stop the challenger; the ``rejected`` event."""
    change = event(state, name, "rejected", state["challenger"]["version"], state["version"],
                   reason, partition, timestamp)
    del state["challenger"]
    return change
