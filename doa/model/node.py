"""Model nodes: a pre-trained model scores whole micro-batches of records.

``topology.model(name, reads=..., writes=..., model=..., features=[...])`` declares one. On each
batch the node builds one 2-D array of the declared feature fields (one row per record, the
columns in the declared order) and calls the model *once* (see :mod:`doa.model.formats` for
the supported kinds: scikit-learn, ONNX, River used frozen, any ``predict_batch`` object).
Each record yields one ``doa.Prediction`` (its ``features`` are what the model saw, its
``model_version`` the version that made it), or the record the ``output`` function builds
from the input event and that prediction, for a stream of the user's own schema. Every
output's lineage header carries the model version too (:class:`doa.events.Out`).

Versions are data (:mod:`doa.model.versions`): the node also reads its versions stream
(``doa.ModelArtifact`` records, ``NAME.versions`` by default), merged with its inputs by
timestamp. ``doa model publish`` puts a new version there; the node switches between two
records, at the version's place in the merged log, so a replay switches at the same record
whatever the batch sizes: the records before are scored by the old version, those after by
the new one. A *candidate* version is scored beside the live one on the same records, into
the ``shadow`` stream, never into ``writes``; with ``labels=`` both are scored on the same
delayed labels (:mod:`doa.model.labels`) and a :class:`~doa.model.labels.Promote` policy may
promote it. Each change is a ``doa.ModelEvent`` on the ``models`` stream.

The topology's model is loaded by the node kind's start hook (:meth:`ModelSpec.start`), once
per process, never at import; a published version is loaded from its bytes when it first
scores (once per process). A record whose feature is missing, null, not a number, NaN or
infinite is never given to the model (one would fail on it, another score it silently, as a
tree does a NaN): the step raises on it as it reaches it, naming the node, the feature and
the record, and the runtime retries the batch around it (:mod:`doa.runtime.isolate`), so that
record is a dead letter and the rest of the batch is scored.

Examples
--------
>>> import numpy as np
>>> from doa.events import Event
>>> class Rule:  # any object with predict_batch: 2-D array in, one prediction per row out
...     def predict_batch(self, X):
...         return np.where(X[:, 0] > 1000, 0.0, X[:, 0] * 0.8)
>>> node = model_node("payout", reads="claims", writes="payouts", model=Rule(),
...                   features=["amount"], join="claim_id")
>>> node.kind, node.reads, node.writes, node.describe()["format"]
('model', ('payout.versions', 'claims'), ('payouts',), 'predict_batch')
>>> node.spec.start()  # the runtime does this before the first batch
>>> batch = [Event({"claim_id": "c1", "amount": 500.0}, stream="claims", partition=0,
...                offset=0, timestamp=10)]
>>> state, [out] = node.step(node.state(), batch)
>>> out.record["join"], out.record["prediction"], out.record["features"], out.model_version
('c1', 400.0, {'amount': 500.0}, 1)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from doa.events import Out
from doa.learner.records import dead_feature, origin
from doa.model import labels as tracking
from doa.model import paths, versions
from doa.model.formats import describe
from doa.model.inputs import bad_feature
from doa.model.labels import Labels, Promote
from doa.model.spec import ARTIFACT_SCHEMA, PREDICTION_SCHEMA, ModelSpec
from doa.node import Node, Stream, stream_name, stream_names

__all__ = ["ARTIFACT_SCHEMA", "PREDICTION_SCHEMA", "Labels", "ModelSpec", "Promote",
           "model_node"]

AUTO = "auto"
Output = Callable[[Any, dict[str, Any]], dict[str, Any]]


def model_node(name: str, *, reads: Stream | str | Iterable[Stream | str],
               writes: Stream | str, model: Any, features: Sequence[str],
               join: str | None = None, key: str | None = None, version: int = 1,
               output: Output | None = None, classes: Sequence[Any] | None = None,
               versions: Stream | str | None = AUTO, keep: int = 5,
               shadow: Stream | str | None = None, models: Stream | str | None = None,
               labels: Labels | Stream | str | None = None,
               promote_when: Promote | None = None, folder: Path | None = None) -> Node:
    """A node scoring each batch of ``reads`` with the pre-trained ``model``.

    Parameters
    ----------
    name : the node's name (also the ``model`` field of its predictions)
    reads : the stream(s) of records to score
    writes : the stream of ``doa.Prediction`` records (or of ``output``'s records)
    model : a file path (``.onnx``; ``.pkl``/``.joblib``) or a model object; see
        :func:`doa.model.formats.load`
    features : the numeric (or boolean) fields given to the model, in its column order
    join, key : fields copied to each prediction's ``join`` (default: the input's event id)
        and ``key``
    version : the version number of ``model`` (published versions get higher ones)
    output : ``output(event, prediction) -> record`` for a stream of your own schema
    classes : an ONNX model's classes, in the order of its probability columns: its
        predictions and probabilities name them (``doa model publish --classes``: a version's)
    versions : the ``doa.ModelArtifact`` stream ``doa model publish`` writes (default
        ``NAME.versions``, which ``topology.model`` declares if needed); None: no versions
    keep : published versions kept for ``doa model rollback``
    shadow : the stream of a candidate version's predictions (same schema as ``writes``)
    models : the stream of ``doa.ModelEvent`` records (each version change)
    labels : a :class:`~doa.model.labels.Labels`, or the label stream (field ``label``)
    promote_when : a :class:`~doa.model.labels.Promote` policy for candidates
    folder : the folder a relative model path resolves against (``topology.model`` gives the
        topology file's; see :mod:`doa.model.paths`)
    """
    if not features:
        raise ValueError(f"model {name!r}: features= must name at least one field")
    if promote_when is not None and labels is None:
        raise ValueError(f"model {name!r}: promote_when= compares versions on labels; give "
                         "labels= too")
    model = paths.resolve(model, folder, name)
    fmt, source = describe(model)
    if isinstance(labels, (Stream, str)):
        labels = Labels(str(stream_name(labels)))
    if labels is not None:
        labels = _names(labels)
    spec = ModelSpec(name, stream_names(reads), str(stream_name(writes)), tuple(features),
                     join, key, fmt, source, version, output is not None, model,
                     None if classes is None else tuple(classes),
                     versions=f"{name}.versions" if versions == AUTO else stream_name(versions),
                     keep=keep, shadow=stream_name(shadow), models=stream_name(models),
                     labels=labels, promote_when=promote_when, folder=folder)
    return spec.node(name, _step(spec, output), lambda: _initial(spec))


def _names(labels: Labels) -> Labels:
    """``labels`` with stream names, and a metric (default: River's Accuracy)."""
    metric = labels.metric
    if metric is None:
        from river import metrics

        metric = metrics.Accuracy()  # type: ignore[no-untyped-call]
    return Labels(str(stream_name(labels.stream)), labels.label, metric,
                  stream_name(labels.outcomes), stream_name(labels.metrics),
                  stream_name(labels.unmatched), labels.every, labels.max_pending,
                  labels.label_wait_ms)


def _initial(spec: ModelSpec) -> dict[str, Any]:
    state = versions.initial(spec.version, spec.format)
    if spec.labels is not None:
        state.update(pending=OrderedDict(), early=OrderedDict(),
                     metrics={spec.version: spec.labels.metric.clone()}, labels={spec.version: 0})
    return state


def _step(spec: ModelSpec, output: Output | None) -> Callable[[Any, list[Any]], Any]:
    features = spec.features
    row = itemgetter(*features)
    width = len(features)
    label_stream = None if spec.labels is None else stream_name(spec.labels.stream)
    metric = None if spec.labels is None else spec.labels.metric
    bound = 0 if spec.labels is None else spec.labels.max_pending
    add = sum if width > 1 else abs
    warned: set[str] = set()  # what the node has told once in the log

    def checked(e: Any) -> Any:
        """The feature values of record ``e``; raises on one the model must not see (the
        record becomes a dead letter) as the step reaches it, so the runtime's retry finds
        it at once (:mod:`doa.runtime.isolate`)."""
        try:
            values = row(e)
            total = add(values)
        except (KeyError, TypeError):
            total = math.nan
        if total - total == 0:  # finite numbers add up to a finite number
            return values
        bad = bad_feature(e, features)
        if bad is None:  # finite numbers whose sum overflows, or decimals among floats
            return row(e)
        field, value = bad
        raise dead_feature(f"model {spec.name!r}", field, value, e,
                           "a model node scores finite numbers only",  # a NaN or inf: whence
                           origin(e) if isinstance(e.get(field), (float, Decimal)) else None)

    def records(state: dict[str, Any], batch: list[Any], X: np.ndarray[Any, Any],
                version: int, stream: str | None, out: list[Any]) -> list[Any]:
        """Score ``batch`` with ``version``, its records into ``out``; the predictions."""
        scored = spec.scorer(state, version).score(X)
        probabilities = scored.probabilities or [{}] * len(batch)
        scores: list[float | None] = [*scored.scores] if scored.scores else [None] * len(batch)
        rows = X.tolist()
        for e, values, prediction, proba, score in zip(batch, rows, scored.predictions,
                                                       probabilities, scores, strict=True):
            record = {
                "join": str(e[spec.join]) if spec.join is not None else e.id.hex(),
                "key": None if spec.key is None or e.get(spec.key) is None else str(e[spec.key]),
                "model": spec.name, "model_version": version, "prediction": prediction,
                "probabilities": proba, "score": score,
                "features": dict(zip(features, values, strict=True)), "categories": {},
                "timestamp": e.timestamp,
            }
            out.append(Out(e, record if output is None else output(e, record), stream, version))
        return [p if p is not None else s for p, s in zip(scored.predictions, scores,
                                                          strict=True)]

    def score(state: dict[str, Any], batch: list[Any], rows: list[Any], out: list[Any],
              early: dict[int, Any]) -> None:
        """Score ``batch`` (``rows``: its feature values, checked); ``early``: labels held
        for its records, by position."""
        X = np.array(rows, dtype=np.float64).reshape(len(batch), width)
        live, candidate = state["version"], state["candidate"]
        made = {live: records(state, batch, X, live, spec.predictions, out)}
        if candidate is not None:  # the same rows, into the shadow stream only
            shadow: list[Any] = []
            made[candidate] = records(state, batch, X, candidate, spec.shadow, shadow)
            if spec.shadow is not None:
                out.extend(shadow)
        state["scored"] += len(batch)
        if spec.labels is not None:
            for i, e in enumerate(batch):
                key = None if spec.key is None or e.get(spec.key) is None else str(e[spec.key])
                tracking.track(spec, state, e, key, {v: p[i] for v, p in made.items()}, out)
                if i in early:  # its label came first
                    tracking.on_label(spec, state, early[i], out, anchor=[early[i], e],
                                      warned=warned)

    def step(state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
        out: list[Any] = []
        segment: list[Any] = []
        rows: list[Any] = []  # the segment's feature values
        joins: set[str] = set()
        early: dict[int, Any] = {}  # labels held for the segment's records, by position
        if label_stream is not None:
            state.setdefault("early", OrderedDict())  # a snapshot older than held labels
        for e in batch:
            stream = e.stream
            if segment and (stream == spec.versions or (stream == label_stream and (
                    str(e[spec.join]) in joins or tracking.deciding(spec, state, e)
                    or len(state["pending"]) + len(segment) > bound))):
                # the records before it, versions as they are (and evictions before it)
                score(state, segment, rows, out, early)
                segment, rows, joins, early = [], [], set(), {}
            if stream == spec.versions:
                spec.start()  # the signing key is read there
                for change in versions.apply(state, e, node=spec.name, key=spec.loaded.key,
                                             keep=spec.keep, metric=metric,
                                             partition=e.partition, timestamp=e.timestamp):
                    if spec.models is not None:
                        out.append((e, spec.models, change))
            elif stream == label_stream:
                tracking.on_label(spec, state, e, out, warned=warned)
            else:
                rows.append(checked(e))
                segment.append(e)
                if label_stream is not None and spec.join is not None:
                    join = str(e[spec.join])
                    joins.add(join)
                    label = state["early"].pop(join, None)
                    if label is not None:
                        early[len(segment) - 1] = label
                    tracking.expire(spec, state, e, out)
                    if label is not None and state.get("race") and spec.promote_when:
                        score(state, segment, rows, out, early)  # its label may decide the race
                        segment, rows, joins, early = [], [], set(), {}
        if segment:
            score(state, segment, rows, out, early)
        return state, out

    return step
