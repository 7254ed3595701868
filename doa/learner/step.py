"""The step of a learner node: predict on features, learn on their label, obey model events.

:class:`Learner` holds what a learner node's partitions share (its spec, the River
prototypes, whether the model runs compiled, what was logged once); all mutable data lives in
the state dict it makes (:meth:`Learner.initial`) and threads through :meth:`Learner.step`.
What the records mean, and in which order the runtime merges features and labels:
:mod:`doa.learner.node`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from doa.learner import challenger as race
from doa.learner import held
from doa.learner import records as values
from doa.learner.checks import kinds
from doa.learner.ops import Ops
from doa.learner.spec import LearnerSpec


def has_proba(model: Any) -> bool:
    """Whether River classifier ``model`` (or a pipeline's last step) gives probabilities:
    some only predict labels (``predict_proba_one`` raises NotImplementedError).

    >>> from river import linear_model, multiclass, preprocessing
    >>> has_proba(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    True
    >>> has_proba(multiclass.OneVsOneClassifier(linear_model.LogisticRegression()))
    False
    """
    from river import base, compose

    last = model[-1] if isinstance(model, compose.Pipeline) else model
    return type(last).predict_proba_one is not base.Classifier.predict_proba_one


class Learner:
    """The pure step of a learner node; all mutable data lives in the state dict."""

    def __init__(self, spec: LearnerSpec, model: Any, metric: Any) -> None:
        from river import base

        self.spec = spec
        self.model = model
        self.metric = metric
        self.is_classifier = isinstance(model, base.Classifier)
        self.is_anomaly = isinstance(model, base.AnomalyDetector)
        self.supervised = bool(getattr(model, "_supervised", True))
        if metric is not None or spec.labels is not None:
            kinds(spec.name, model, metric, spec.challenger)
        # Probabilities for classifiers that give them, whatever the metric (a prediction
        # record carries them; a metric that needs labels gets the most probable one, as
        # River's progressive_val_score gives it predict_one's: challenger.metric_input);
        # scores for anomaly detectors; predict_one otherwise.
        self.use_proba = self.is_classifier and has_proba(model)
        self.warned: set[str] = set()  # what was logged once (a non-finite feature, metric)
        self.compiled = self._use_compiled(spec, model)

    @staticmethod
    def _use_compiled(spec: LearnerSpec, model: Any) -> bool:
        if spec.compiled is False:
            return False
        from doa.compiled import why_not

        reason = why_not(model) or (None if spec.feature_fields else
                                    "feature_fields must fix the feature order")
        if spec.challenger is not None:  # it may become the live model
            reason = reason or why_not(spec.challenger)
        if reason and spec.compiled:
            raise ValueError(f"learner {spec.name!r}: cannot compile its model: {reason}")
        return reason is None

    def _as_model(self, model: Any) -> Any:
        """The model as this learner runs it: compiled on its ``feature_fields``, or the River
        object itself. A model restored from a snapshot of a run that ran it the other way (or
        compiled on other fields) is converted with its learned state: River's object and the
        compiled one predict and learn alike on the same fields (:mod:`doa.compiled`).

        Raises ValueError, naming the learner and the way out, for a restored River model
        that has no compiled form (its class is not the declared one's).
        """
        is_compiled = hasattr(model, "run_ops")
        if not self.compiled:
            return model.to_river() if is_compiled else model
        fields = tuple(self.spec.feature_fields or ())
        if is_compiled:
            if model.features == fields:
                return model
            model = model.to_river()
        elif not hasattr(model, "learn_one"):
            return model
        from doa.compiled import compile_model, why_not

        reason = why_not(model)
        if reason is not None:
            raise ValueError(f"learner {self.spec.name!r}: its restored model "
                             f"{type(model).__name__} cannot run compiled ({reason}); "
                             "declare compiled=False to run it as River")
        return compile_model(model, features=list(fields))

    def initial(self) -> dict[str, Any]:
        from doa.learner.versions import start_versions

        metric = None if self.metric is None else self.metric.clone()
        state = {"model": self._as_model(self.model.clone()), "metric": metric,
                 "pending": OrderedDict(), "early": OrderedDict(), "version": 1, "labels": 0}
        start_versions(state, timestamp=0)
        if self.spec.challenger is not None:
            race.start(state, self.spec.challenger, self.metric)
        return state

    def step(self, state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
        out: list[Any] = []
        ops = self._ops(state)
        if batch and "challenger" in state and not state["challenger"]["announced"]:
            self._model_event(batch[0], out, race.announce(state, self.spec.name,
                                                           self.spec.challenger, batch[0]))
        for event in batch:
            if event.stream == self.spec.labels:
                self._on_label(state, event, ops, out)
            elif event.stream in (self.spec.drift, self.spec.control):
                ops.flush()
                self._on_model_event(state, event, out)
                ops.model = state["model"] = self._as_model(state["model"])
                ops.beside = self._beside(state)
            else:
                self._on_features(state, event, ops, out)
        ops.flush()
        return state, out

    def _ops(self, state: dict[str, Any]) -> Ops:
        # a restored state may hold the model as a run declared otherwise ran it
        state["model"] = self._as_model(state["model"])
        ops = Ops(state["model"], self._predict, self._convert if self.compiled else None,
                  self.supervised)
        ops.beside = self._beside(state)
        return ops

    def _beside(self, state: dict[str, Any]) -> Ops | None:
        """The challenger's calls (River's own, whatever the live model runs as)."""
        ch = state.get("challenger")
        return None if ch is None else Ops(ch["model"], self._predict, None, self.supervised)

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
        x = values.features(event, self.spec.feature_fields, (self.spec.join, self.spec.key))
        return values.finite(x, event, self.spec.name, self.compiled, self.warned)

    def _on_features(self, state: dict[str, Any], event: Any, ops: Ops,
                     out: list[Any]) -> None:
        spec = self.spec
        join = str(event[spec.join])
        if spec.labels is None:
            self._score_then_learn(state, event, join, ops, out)
            return
        if join in state["pending"]:  # predicted on already, its label not in yet: report
            self._unmatched(event, ops, out, "duplicate", join, "a second feature record with "
                            "a join value whose prediction still waits for its label; the "
                            "first one's prediction stands", what="feature record",
                            in_hand=True)
            return
        x = self._features(event)
        cell = ops.predict(x)
        version = state["version"]
        state["pending"][join] = (x, cell, version, event.timestamp)
        ops.later(lambda: out.append((event, spec.predictions, self._prediction(
            event, join, x, cell[0], version))))
        if ops.beside is not None:  # the challenger: same features, the shadow stream only
            shadow, by = ops.beside.predict(x), state["challenger"]["version"]
            state["pending"][join] += (shadow, by)
            if spec.shadow is not None:
                ops.later(lambda: out.append((event, spec.shadow, self._prediction(
                    event, join, x, shadow[0], by))))
        if len(state["pending"]) > spec.max_pending:
            old_join, _ = state["pending"].popitem(last=False)
            self._unmatched(event, ops, out, "evicted", old_join,
                            f"buffer of {spec.max_pending} pending predictions is full",
                            what="prediction")
        label = state["early"].pop(join, None)
        if label is not None:  # its label came first (delay 0, or these features lagged)
            self._on_label(state, label, ops, out, anchor=[label, event])
        held.expire(state["early"], event, wait_ms=spec.label_wait_ms,
                    report=self._reporter(ops, out))

    def _score_then_learn(self, state: dict[str, Any], event: Any, join: str, ops: Ops,
                          out: list[Any]) -> None:
        """No label stream: score the record, then learn on it (progressive validation, as
        River's ``s = model.score_one(x); model.learn_one(x)``); ``labels`` counts them."""
        spec, x, version = self.spec, self._features(event), state["version"]
        cell = ops.predict(x)
        ops.later(lambda: out.append((event, spec.predictions, self._prediction(
            event, join, x, cell[0], version))))
        ops.learn(x, None)
        state["labels"] += 1
        if spec.version_every and state["labels"] % spec.version_every == 0:
            from doa.learner.versions import new_version

            ops.flush()  # the version is the model as it is after this record
            self._model_event(event, out, new_version(
                state, spec.name, partition=event.partition, timestamp=event.timestamp,
                keep=spec.keep_versions))

    def _prediction(self, event: Any, join: str, x: dict[str, Any], y_pred: Any,
                    version: int) -> dict[str, Any]:
        proba = y_pred if self.use_proba else {}
        numeric, categories = values.split(x)
        return {"join": join, "key": values.key(event, self.spec.key), "model": self.spec.name,
                "model_version": version, "prediction": values.scalar(self._label_of(y_pred)),
                "probabilities": {str(k): float(v) for k, v in proba.items()},
                "score": float(y_pred) if self.is_anomaly else None,
                "features": numeric, "categories": categories, "timestamp": event.timestamp}

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
            held.hold(state["early"], join, event, bound=spec.max_pending,
                      report=self._reporter(ops, out))
            return
        x, cell, version, predicted_at, *shadow = pending
        delay = event.timestamp - predicted_at
        del state["pending"][join]
        held.before_prediction(state, event, predicted_at, wait_ms=spec.label_wait_ms,
                               who=f"learner {spec.name!r}", join=(spec.join, join),
                               warned=self.warned)
        if spec.max_delay_ms is not None and delay > spec.max_delay_ms:
            self._unmatched(event, ops, out, "late", join, f"label {delay} ms after its "
                            f"features, more than max_delay_ms={spec.max_delay_ms}", anchor,
                            in_hand=anchor is event)
            return
        y = event[spec.label]
        ops.learn(x, y)
        state["labels"] += 1
        labels = state["labels"]

        def effects() -> None:
            y_pred = cell[0]
            if y_pred is not None and y_pred != {}:
                state["metric"].update(y_true=y, y_pred=race.metric_input(state["metric"], y_pred))
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
                            self.metric_record(state, event.timestamp, labels,
                                               partition=event.partition)))

        ops.later(effects)
        if ops.beside is not None:  # the challenger learns too; both are scored on y
            ops.beside.learn(x, y)
            verdict = race.on_label(state, spec, ops, out, label=event, anchor=anchor, y=y,
                                    live=cell, shadow=shadow)
            if verdict is not None:
                self._settle(state, event, anchor, out, *verdict)
                ops.model, ops.beside = state["model"], None
        if spec.version_every and labels % spec.version_every == 0:
            from doa.learner.versions import new_version

            ops.flush()  # the version is the model as it is after this label
            self._model_event(anchor, out, new_version(
                state, spec.name, partition=event.partition, timestamp=event.timestamp,
                keep=spec.keep_versions))

    def _settle(self, state: dict[str, Any], event: Any, anchor: Any, out: list[Any],
                promote: bool, reason: str) -> None:
        """Promote the challenger (kept as a version, run as this learner runs models) or
        reject it."""
        from doa.learner.versions import keep_version

        where = {"partition": event.partition, "timestamp": event.timestamp}
        if promote:
            change = race.promote(state, self.spec.name, reason=reason, **where)
            keep_version(state, event.timestamp, self.spec.keep_versions)
            state["model"] = self._as_model(state["model"])
        else:
            change = race.reject(state, self.spec.name, reason=reason, **where)
        self._model_event(anchor, out, change)

    def _on_model_event(self, state: dict[str, Any], event: Any, out: list[Any]) -> None:
        from doa.learner import versions as models

        spec = self.spec
        if event.stream == spec.drift:
            change = models.on_drift(state, spec.on_drift, self.model, spec.name, event,
                                     spec.keep_versions)
            if change is None:  # another partition's drift: not applied (and logged)
                return
        elif event["command"] == "promote":
            if "challenger" not in state:
                raise ValueError(f"learner {spec.name!r}: promote, but no challenger runs")
            named, running = int(event["version"]), state["challenger"]["version"]
            if named not in (0, running):  # 0: whichever runs (a command naming none)
                raise ValueError(f"learner {spec.name!r}: promote version {named}, but "
                                 f"challenger version {running} runs")
            self._settle(state, event, event, out, True, event["reason"] or "doa model promote")
            return
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
                      labels: int | None = None, partition: int | None = None
                      ) -> dict[str, Any]:
        n = state["labels"] if labels is None else labels
        return {"model": self.spec.name, "model_version": state["version"],
                "metric": type(state["metric"]).__name__, "labels": n, "timestamp": timestamp,
                "value": values.metric_value(state["metric"], self.spec.name, n, self.warned),
                "partition": partition}

    def _reporter(self, ops: Ops, out: list[Any]) -> held.Report:
        return lambda event, reason, join, detail, anchor: self._unmatched(
            event, ops, out, reason, join, detail, anchor)

    def _unmatched(self, event: Any, ops: Ops, out: list[Any], reason: str, join: str,
                   detail: str, anchor: Any = None, what: str = "label",
                   in_hand: bool = False) -> None:
        """Report on the unmatched stream ``what`` (a label, a feature record, a prediction)
        of join value ``join`` and why (``reason``, ``detail``). With no such stream: the
        record in hand (``in_hand``) becomes a dead letter; any other is dropped with a line
        in the log (:func:`doa.learner.held.dropped`)."""
        if self.spec.unmatched is None:
            if not in_hand:
                held.dropped(f"learner {self.spec.name!r}", event, reason, join, detail, what)
                return
            raise ValueError(f"learner {self.spec.name!r}: {reason} {what} for join value "
                             f"{join!r} ({detail}) and no unmatched= stream is declared")
        record = {"reason": reason, "model": self.spec.name, "join": join,
                  "stream": event.stream, "partition": event.partition, "offset": event.offset,
                  "timestamp": event.timestamp, "detail": detail}
        item = (event if anchor is None else anchor, self.spec.unmatched, record)
        ops.later(lambda: out.append(item))
