"""Online learners: a River model that predicts on features and learns when the label arrives.

The node reads the label stream and the feature stream *together*: the runtime merges them
by record timestamp (labels first on ties, as River's ``stream.simulate_qa`` reveals a label
whose time is not after the next question), so a replay sees the same order. A label record's
timestamp is the time it became known (feature time + delay).

On a feature record the learner predicts, emits a ``doa.Prediction`` with the features it used,
and keeps those features under the record's join value. On the matching label it updates the
running River metric with the logged prediction, learns on the *logged* features (never on
features recomputed later: no leakage), and emits a ``doa.Outcome``. Labels that match nothing,
arrive too late, or predictions evicted from a full buffer become ``doa.UnmatchedLabel``
records: nothing is dropped silently. Every ``metrics_every`` labels a ``doa.Metric`` goes out.

On one partition the final metric equals ``river.evaluate.progressive_val_score`` on the same
data and delay (tests/test_learner.py checks it to 1e-12).

Examples
--------
>>> from river import linear_model, metrics, preprocessing
>>> node = learner_node("fraud", features="txns", labels="txn_labels", predictions="preds",
...                     model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
...                     metric=metrics.Accuracy(), join="txn_id", label="is_fraud",
...                     feature_fields=["amount"])
>>> node.kind, node.reads
('learner', ('txn_labels', 'txns'))
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from doa.learner import records as values
from doa.learner.ops import Ops
from doa.node import Node, Stream


@dataclass(frozen=True)
class LearnerSpec:
    """How a learner node is wired; see :func:`learner_node`."""

    name: str
    features: str
    labels: str
    predictions: str
    outcomes: str | None
    metrics: str | None
    unmatched: str | None
    join: str
    label: str
    feature_fields: tuple[str, ...] | None
    key: str | None
    max_pending: int
    max_delay_ms: int | None
    metrics_every: int
    version_every: int | None
    models: str | None = None
    control: str | None = None
    drift: str | None = None
    on_drift: str = "ignore"
    keep_versions: int = 10
    compiled: bool | None = None
    label_wait_ms: int = 60_000


def learner_node(name: str, *, features: Stream | str, labels: Stream | str,
                 predictions: Stream | str, model: Any, metric: Any,
                 outcomes: Stream | str | None = None, metrics: Stream | str | None = None,
                 unmatched: Stream | str | None = None, join: str = "id",
                 label: str = "label", feature_fields: Sequence[str] | None = None,
                 key: str | None = None, max_pending: int = 100_000,
                 max_delay_ms: int | None = None, metrics_every: int = 1000,
                 version_every: int | None = None, models: Stream | str | None = None,
                 control: Stream | str | None = None, drift: Stream | str | None = None,
                 on_drift: str = "ignore", keep_versions: int = 10,
                 compiled: bool | None = None, label_wait_ms: int = 60_000) -> Node:
    """A learner node wrapping a River ``model`` (classifier, regressor or anomaly detector).

    Parameters
    ----------
    features, labels : the streams it reads; both must carry the ``join`` field
    predictions, outcomes, metrics, unmatched : the streams it writes (declare them with the
        doa schemas ``doa.Prediction``, ``doa.Outcome``, ``doa.Metric``, ``doa.UnmatchedLabel``)
    model, metric : River prototypes; each input partition gets its own ``clone()``
    join : the field that pairs a label with its features
    label : the label record's field holding the truth
    feature_fields : the feature record's fields given to the model (default: all numeric
        and boolean fields but ``join`` and ``key``)
    max_pending : predictions waiting for labels, and labels waiting for their features;
        beyond it the oldest is evicted (reported as ``evicted`` or ``overflow``)
    label_wait_ms : a label whose features have not come yet (delay 0, or a feature node
        that lags) is held in the state until they come; it is reported as ``unknown`` once
        the features' event time passes the label's time by this much (default 60 s: features
        may arrive out of timestamp order by less than that, e.g. from several upstream
        partitions)
    max_delay_ms : a label later than this after its features is refused (reported)
    metrics_every : publish the running metric every this many labels
    version_every : a new model version every this many labels (None: only on rollback/reset)
    models : stream of ``doa.ModelEvent`` (versions created with the pickled model,
        rollbacks, resets, ignored drift)
    control : stream of ``doa.ModelCommand`` it obeys (``doa model rollback``)
    drift : stream of ``doa.DriftEvent`` it reacts to with ``on_drift``: ``ignore``, ``reset``
        (a fresh clone of ``model``) or ``rollback`` (the newest version created before the
        drift event's triggering record)
    keep_versions : versions kept in the state for rollbacks
    compiled : run the model as a compiled Numba kernel (``doa.compiled``), bit-equal to River
        and ~30x faster; ``None`` (default): when the model is supported and
        ``feature_fields`` fixes the feature order; ``False``: always River
    """
    from doa.learner.versions import POLICIES

    if on_drift not in POLICIES:
        raise ValueError(f"learner {name!r}: on_drift must be one of {POLICIES}, "
                         f"got {on_drift!r}")
    def name_of(s: Stream | str | None) -> str | None:
        return s.name if isinstance(s, Stream) else s

    spec = LearnerSpec(name, str(name_of(features)), str(name_of(labels)),
                       str(name_of(predictions)), name_of(outcomes), name_of(metrics),
                       name_of(unmatched), join, label,
                       tuple(feature_fields) if feature_fields is not None else None, key,
                       max_pending, max_delay_ms, metrics_every, version_every,
                       name_of(models), name_of(control), name_of(drift), on_drift,
                       keep_versions, compiled, label_wait_ms)
    writes = tuple(s for s in (spec.predictions, spec.outcomes, spec.metrics, spec.unmatched,
                               spec.models) if s is not None)
    reads = tuple(s for s in (spec.labels, spec.features, spec.drift, spec.control)
                  if s is not None)
    learner = _Learner(spec, model, metric)
    options: dict[str, Any] = {"spec": spec, "compiled": learner.compiled}
    if learner.compiled:
        from doa.compiled import warm_up

        options["on_start"] = warm_up
    return Node(name, reads, writes, learner.step, learner.initial, kind="learner",
                options=options)


class _Learner:
    """The pure step of a learner node; all mutable data lives in the state dict."""

    def __init__(self, spec: LearnerSpec, model: Any, metric: Any) -> None:
        from river import base

        self.spec = spec
        self.model = model
        self.metric = metric
        self.is_classifier = isinstance(model, base.Classifier)
        self.is_anomaly = isinstance(model, base.AnomalyDetector)
        self.supervised = bool(getattr(model, "_supervised", True))
        # River's progressive_val_score: probabilities for classifiers unless the metric
        # needs labels; scores for anomaly detectors; predict_one otherwise.
        self.use_proba = self.is_classifier and not metric.requires_labels
        if not metric.works_with(model):
            raise ValueError(f"learner {spec.name!r}: {type(metric).__name__} does not work "
                             f"with {model}")
        self.compiled = self._use_compiled(spec, model)

    @staticmethod
    def _use_compiled(spec: LearnerSpec, model: Any) -> bool:
        if spec.compiled is False:
            return False
        from doa.compiled import why_not

        reason = why_not(model) or (None if spec.feature_fields else
                                    "feature_fields must fix the feature order")
        if reason and spec.compiled:
            raise ValueError(f"learner {spec.name!r}: cannot compile its model: {reason}")
        return reason is None

    def _as_model(self, model: Any) -> Any:
        """The model as this learner runs it: compiled, or the River object itself."""
        if not self.compiled or not hasattr(model, "learn_one") or hasattr(model, "run_ops"):
            return model
        from doa.compiled import compile_model

        return compile_model(model, features=list(self.spec.feature_fields or ()))

    def initial(self) -> dict[str, Any]:
        from doa.learner.versions import start_versions

        state = {"model": self._as_model(self.model.clone()), "metric": self.metric.clone(),
                 "pending": OrderedDict(), "early": OrderedDict(), "version": 1, "labels": 0}
        start_versions(state, timestamp=0)
        return state

    # -- the step ------------------------------------------------------------------------------
    def step(self, state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
        out: list[Any] = []
        ops = self._ops(state)
        for event in batch:
            if event.stream == self.spec.labels:
                self._on_label(state, event, ops, out)
            elif event.stream in (self.spec.drift, self.spec.control):
                ops.flush()
                self._on_model_event(state, event, out)
                ops.model = state["model"] = self._as_model(state["model"])
            else:
                self._on_features(state, event, ops, out)
        ops.flush()
        return state, out

    def _expire_held(self, state: dict[str, Any], event: Any, ops: Ops,
                     out: list[Any]) -> None:
        """Report held labels that features at ``event``'s time prove can match nothing.

        Features come in (nearly) timestamp order and a label's time is its features' time
        plus the delay, so once the features' event time passes a held label's time by
        ``label_wait_ms``, the label's features will not come any more.
        """
        early = state["early"]
        horizon = event.timestamp - self.spec.label_wait_ms
        while early and next(iter(early.values())).timestamp < horizon:
            join, label = early.popitem(last=False)
            self._unmatched(label, ops, out, "unknown", join, "no prediction has this join "
                            f"value: features with it did not come within label_wait_ms="
                            f"{self.spec.label_wait_ms} of event time (never seen, already "
                            "labelled, or evicted)", [label, event])

    def _ops(self, state: dict[str, Any]) -> Ops:
        if self.compiled:
            return Ops(state["model"], self._predict, self._convert, self.supervised)
        return Ops(state["model"], self._predict, None, self.supervised)

    def _predict(self, model: Any, x: dict[str, Any]) -> Any:
        if self.is_anomaly:
            return model.score_one(x)
        if self.use_proba:
            return model.predict_proba_one(x)
        return model.predict_one(x)

    def _convert(self, row: Any) -> Any:
        """A compiled kernel's output row as River's own call would have returned it."""
        value = float(row[0])
        if self.is_classifier:
            proba = {False: 1.0 - value, True: value}
            return proba if self.use_proba else values.argmax(proba)
        return value

    def _features(self, event: Any) -> dict[str, Any]:
        fields = self.spec.feature_fields
        if fields is not None:
            return {f: event[f] for f in fields}
        skip = {self.spec.join, self.spec.key}
        return {k: v for k, v in event.items()
                if k not in skip and isinstance(v, (int, float)) and v is not None}

    def _on_features(self, state: dict[str, Any], event: Any, ops: Ops,
                     out: list[Any]) -> None:
        spec = self.spec
        join = str(event[spec.join])
        if join in state["pending"]:  # predicted on already, its label not in yet: report
            self._unmatched(event, ops, out, "duplicate", join, "a second feature record with "
                            "a join value whose prediction still waits for its label; the "
                            "first one's prediction stands")
            return
        x = self._features(event)
        cell = ops.predict(x)
        version = state["version"]
        state["pending"][join] = (x, cell, version, event.timestamp)

        def emit() -> None:
            y_pred = cell[0]
            proba = y_pred if self.use_proba else {}
            numeric, categories = values.split(x)
            out.append((event, spec.predictions, {
                "join": join, "key": values.key(event, spec.key), "model": spec.name,
                "model_version": version, "prediction": values.scalar(self._label_of(y_pred)),
                "probabilities": {str(k): float(v) for k, v in proba.items()},
                "score": float(y_pred) if self.is_anomaly else None,
                "features": numeric, "categories": categories, "timestamp": event.timestamp,
            }))

        ops.later(emit)
        if len(state["pending"]) > spec.max_pending:
            old_join, _ = state["pending"].popitem(last=False)
            self._unmatched(event, ops, out, "evicted", old_join,
                            f"buffer of {spec.max_pending} pending predictions is full")
        label = state["early"].pop(join, None)
        if label is not None:  # its label came first (delay 0, or these features lagged)
            self._on_label(state, label, ops, out, anchor=[label, event])
        self._expire_held(state, event, ops, out)

    def _label_of(self, y_pred: Any) -> Any:
        if self.use_proba:
            return values.argmax(y_pred)
        return None if self.is_anomaly else y_pred

    def _on_label(self, state: dict[str, Any], event: Any, ops: Ops, out: list[Any],
                  anchor: Any = None) -> None:
        """Learn from a label; outputs hang on ``anchor`` (default: the label itself)."""
        spec = self.spec
        anchor = event if anchor is None else anchor
        join = str(event[spec.join])
        pending = state["pending"].get(join)
        if pending is None:
            # Its features have not come yet: a tie (delay 0: ties go label-first) or an
            # upstream node that lags. Hold the label until they come (or its wait ends).
            held = state["early"]
            if join in held:
                self._unmatched(held.pop(join), ops, out, "duplicate", join, "a second label "
                                "for a join value whose features have not come; the "
                                "newer label is held", event)
            held[join] = event
            if len(held) > spec.max_pending:
                old_join, old = held.popitem(last=False)
                self._unmatched(old, ops, out, "overflow", old_join, f"{spec.max_pending} "
                                "labels wait for their features already", event)
            return
        x, cell, version, predicted_at = pending
        delay = event.timestamp - predicted_at
        del state["pending"][join]
        if spec.max_delay_ms is not None and delay > spec.max_delay_ms:
            self._unmatched(event, ops, out, "late", join, f"label {delay} ms after its "
                            f"features, more than max_delay_ms={spec.max_delay_ms}", anchor)
            return
        y = event[spec.label]
        ops.learn(x, y)
        state["labels"] += 1
        labels = state["labels"]

        def effects() -> None:
            y_pred = cell[0]
            if y_pred is not None and y_pred != {}:
                state["metric"].update(y_true=y, y_pred=y_pred)
            label_pred = self._label_of(y_pred)
            if spec.outcomes is not None:
                correct = (label_pred == y) if self.is_classifier else None
                out.append((anchor, spec.outcomes, {
                    "join": join, "key": values.key(event, spec.key), "model": spec.name,
                    "model_version": version, "prediction": values.scalar(label_pred),
                    "label": values.scalar(y), "correct": correct,
                    "error": values.error(y, label_pred, y_pred, correct, self.is_anomaly),
                    "delay_ms": delay, "timestamp": event.timestamp,
                }))
            if spec.metrics is not None and labels % spec.metrics_every == 0:
                out.append((anchor, spec.metrics,
                            self.metric_record(state, event.timestamp, labels)))

        ops.later(effects)
        if spec.version_every and labels % spec.version_every == 0:
            from doa.learner.versions import new_version

            ops.flush()  # the version is the model as it is after this label
            self._model_event(anchor, out, new_version(
                state, spec.name, partition=event.partition, timestamp=event.timestamp,
                keep=spec.keep_versions))

    def _on_model_event(self, state: dict[str, Any], event: Any, out: list[Any]) -> None:
        from doa.learner import versions as models

        spec = self.spec
        if event.stream == spec.drift:
            change = models.on_drift(state, spec.on_drift, self.model, spec.name, event,
                                     spec.keep_versions)
        elif event["command"] == "reset":
            change = models.reset(state, self.model, spec.name, partition=event.partition,
                                  timestamp=event.timestamp, reason=event["reason"] or
                                  "doa model reset", keep=spec.keep_versions)
        elif event["version"] not in state["versions"]:
            raise ValueError(f"learner {spec.name!r}: cannot roll back to version "
                             f"{event['version']}: kept versions are "
                             f"{sorted(state['versions'])}")
        else:
            change = models.rollback(state, event["version"], spec.name,
                                     partition=event.partition, timestamp=event.timestamp,
                                     reason=event["reason"] or "doa model rollback",
                                     keep=spec.keep_versions)
        self._model_event(event, out, change)

    def _model_event(self, anchor: Any, out: list[Any], change: dict[str, Any]) -> None:
        if self.spec.models is not None:
            out.append((anchor, self.spec.models, change))

    def metric_record(self, state: dict[str, Any], timestamp: int,
                      labels: int | None = None) -> dict[str, Any]:
        value = state["metric"].get()
        return {"model": self.spec.name, "model_version": state["version"],
                "metric": type(state["metric"]).__name__,
                "value": float(value) if value is not None else math.nan,
                "labels": state["labels"] if labels is None else labels,
                "timestamp": timestamp}

    def _unmatched(self, event: Any, ops: Ops, out: list[Any], reason: str, join: str,
                   detail: str, anchor: Any = None) -> None:
        if self.spec.unmatched is None:
            raise ValueError(f"learner {self.spec.name!r}: {reason} label {join!r} ({detail}) "
                             "and no unmatched= stream is declared")
        record = {"reason": reason, "model": self.spec.name, "join": join,
                  "stream": event.stream, "partition": event.partition, "offset": event.offset,
                  "timestamp": event.timestamp, "detail": detail}
        item = (event if anchor is None else anchor, self.spec.unmatched, record)
        ops.later(lambda: out.append(item))

