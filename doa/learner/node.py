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

On one partition the final metric equals River's ``progressive_val_score`` (to 1e-12), with
or without a challenger (:mod:`doa.learner.challenger`; held labels: :mod:`doa.learner.held`).

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

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from doa.learner.checks import declaring
from doa.learner.spec import Inputs, LearnerSpec, Outputs, Pending, Versions, group, resolve
from doa.learner.step import Learner
from doa.model.labels import Promote
from doa.node import Node, Stream

__all__ = ["Inputs", "LearnerSpec", "Outputs", "Pending", "Versions", "learner_node"]


def learner_node(name: str, *, model: Any, metric: Any = None, reads: Inputs | None = None,
                 writes: Outputs | None = None, versions: Versions | None = None,
                 pending: Pending | None = None, compiled: bool | None = None,
                 features: Stream | str | None = None, labels: Stream | str | None = None,
                 predictions: Stream | str | None = None, outcomes: Stream | str | None = None,
                 metrics: Stream | str | None = None, unmatched: Stream | str | None = None,
                 join: str | None = None, label: str | None = None,
                 feature_fields: Sequence[str] | None = None, key: str | None = None,
                 max_pending: int | None = None, max_delay_ms: int | None = None,
                 metrics_every: int | None = None, version_every: int | None = None,
                 models: Stream | str | None = None, control: Stream | str | None = None,
                 drift: Stream | str | None = None, on_drift: str | None = None,
                 keep_versions: int | None = None, label_wait_ms: int | None = None,
                 shadow: Stream | str | None = None, challenger: Any = None,
                 promote_when: Promote | None = None) -> Node:
    """A learner node wrapping a River ``model`` (classifier, regressor or anomaly detector).

    Parameters
    ----------
    name : the node's name (also the ``model`` of its records)
    model, metric : River prototypes; each input partition gets its own ``clone()``;
        ``metric`` None only without labels (an anomaly detector scoring, then learning on
        every record: nothing to measure it against)
    reads : :class:`~doa.learner.spec.Inputs`: the feature and label streams, the ``join``
        field pairing them, the ``label`` field, the ``feature_fields`` the model sees, the
        ``key`` field
    writes : :class:`~doa.learner.spec.Outputs`: the predictions, outcomes, metrics,
        unmatched and models streams, and ``metrics_every``
    versions : :class:`~doa.learner.spec.Versions`: a version ``every`` N labels, ``keep``
        versions, the ``control`` and ``drift`` streams it obeys and its ``on_drift`` policy,
        a ``challenger`` learning beside the live model (its predictions on ``shadow``,
        see :mod:`doa.learner.challenger`) and the ``promote_when`` policy deciding
    pending : :class:`~doa.learner.spec.Pending`: ``max`` waiting predictions/labels,
        ``max_delay_ms``, ``label_wait_ms``
    compiled : run the model as a compiled Numba kernel (``doa.compiled``), bit-equal to River
        and ~30x faster; ``None`` (default): when the model is supported and
        ``feature_fields`` fixes the feature order; ``False``: always River
    features, labels, join, label, feature_fields, key, predictions, outcomes, metrics, \
unmatched, shadow, metrics_every, version_every, keep_versions, control, drift, on_drift, \
challenger, promote_when, max_pending, max_delay_ms, label_wait_ms
        the groups' fields given one by one (``version_every`` is ``Versions.every``,
        ``keep_versions`` ``Versions.keep``, ``max_pending`` ``Pending.max``); a group and
        one of its fields cannot both be given

    Returns
    -------
    Node
        ``kind="learner"``; its ``spec`` is the :class:`~doa.learner.spec.LearnerSpec`
        (also in ``options["spec"]``, with ``options["compiled"]``, for older code).
    """
    flat = {"features": features, "labels": labels, "join": join, "label": label,
            "feature_fields": feature_fields, "key": key, "predictions": predictions,
            "outcomes": outcomes, "metrics": metrics, "unmatched": unmatched,
            "models": models, "metrics_every": metrics_every, "version_every": version_every,
            "keep_versions": keep_versions, "control": control, "drift": drift,
            "on_drift": on_drift, "max_pending": max_pending, "max_delay_ms": max_delay_ms,
            "label_wait_ms": label_wait_ms, "shadow": shadow, "challenger": challenger,
            "promote_when": promote_when}
    with declaring():  # a mistake names the topology's line
        groups = group(name, {"reads": reads, "writes": writes, "versions": versions,
                              "pending": pending}, flat)
        spec = resolve(name, compiled=compiled, model=model, metric=metric, **groups)
        learner = Learner(spec, model, metric)
    learner.spec = spec = replace(spec, compiled=learner.compiled)
    options: dict[str, Any] = {"spec": spec, "compiled": learner.compiled}
    if learner.compiled:  # numba is imported when the node starts, not when it is declared
        options["on_start"] = spec.start
    return spec.node(name, learner.step, learner.initial, options=options)
