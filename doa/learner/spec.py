"""What a learner node is given, grouped by concern, and :class:`LearnerSpec`, its node kind.

A learner's parameters come in four groups, each with sensible defaults:

- :class:`Inputs`: the feature and label streams it reads and how a label finds its
  features (``join``), which field is the truth (``label``), which fields the model sees;
- :class:`Outputs`: the streams it writes (only ``predictions`` is required);
- :class:`Versions`: model versions, and what it does on a drift event or a command;
- :class:`Pending`: how long and how many predictions and labels wait for each other.

:func:`doa.learner.node.learner_node` (``topology.learner``) takes them as ``reads=``,
``writes=``, ``versions=`` and ``pending=``, or as the flat keywords of each field.

Examples
--------
>>> spec = resolve("fraud", reads=Inputs("txns", "txn_labels", join="txn_id"),
...                writes=Outputs("preds", outcomes="outcomes"))
>>> spec.streams()
(('txn_labels', 'txns'), ('preds', 'outcomes'))
>>> spec.describe()["streams"]
{'features': 'txns', 'labels': 'txn_labels', 'predictions': 'preds', 'outcomes': 'outcomes'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from doa.model.labels import Promote
from doa.node import Node, NodeKind, Stream, missing_fields, stream_name

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["LEARNER_SCHEMAS", "Inputs", "LearnerSpec", "Outputs", "Pending", "Versions",
           "resolve"]

# the schema each stream a learner writes or reads besides its inputs must have
LEARNER_SCHEMAS = {"predictions": "doa.Prediction", "outcomes": "doa.Outcome",
                   "metrics": "doa.Metric", "unmatched": "doa.UnmatchedLabel",
                   "models": "doa.ModelEvent", "control": "doa.ModelCommand",
                   "drift": "doa.DriftEvent", "shadow": "doa.Prediction"}
_ROLES = ("features", "labels", "predictions", "outcomes", "metrics", "unmatched", "models",
          "control", "drift", "shadow")


@dataclass(frozen=True)
class Inputs:
    """What a learner reads and how it pairs a label with its features.

    Parameters
    ----------
    features, labels : the two streams; both carry the ``join`` field. ``labels`` None: no
        label stream; the model (an anomaly detector) scores each record, then learns on it
    join : the field that pairs a label with its features (and names a prediction)
    label : the label record's field holding the truth
    feature_fields : the feature record's fields given to the model (default: every numeric
        and boolean field but ``join`` and ``key``); fixing them lets the model be compiled
    key : the feature record's field copied to the predictions' ``key``
    """

    features: Stream | str
    labels: Stream | str | None = None
    join: str = "id"
    label: str = "label"
    feature_fields: Sequence[str] | None = None
    key: str | None = None


@dataclass(frozen=True)
class Outputs:
    """The streams a learner writes; None: not written. Declare each with doa's schema:
    ``doa.Prediction``, ``doa.Outcome``, ``doa.Metric``, ``doa.UnmatchedLabel``,
    ``doa.ModelEvent``; ``shadow``: the challenger's predictions (``doa.Prediction``), never
    written to ``predictions``.

    ``metrics_every``: a ``doa.Metric`` record every this many labels (of each version).
    """

    predictions: Stream | str
    outcomes: Stream | str | None = None
    metrics: Stream | str | None = None
    unmatched: Stream | str | None = None
    models: Stream | str | None = None
    metrics_every: int = 1000
    shadow: Stream | str | None = None


@dataclass(frozen=True)
class Versions:
    """Model versions, and how the model reacts to drift and to commands.

    Parameters
    ----------
    every : a new version every this many labels (None: only on rollback and reset)
    keep : versions kept in the state for rollbacks
    control : stream of ``doa.ModelCommand`` it obeys (``doa model rollback``)
    drift : stream of ``doa.DriftEvent`` it reacts to with ``on_drift``
    on_drift : ``ignore``, ``reset`` (a fresh clone of the model) or ``rollback`` (the newest
        version created before the drift event's triggering record)
    challenger : a River model of the same kind learning beside the live one on the same
        labels (its predictions go to ``shadow`` only; see :mod:`doa.learner.challenger`)
    promote_when : a :class:`doa.Promote` policy deciding between the two (None: the
        challenger waits for ``doa model promote``)
    """

    every: int | None = None
    keep: int = 10
    control: Stream | str | None = None
    drift: Stream | str | None = None
    on_drift: str = "ignore"
    challenger: Any = None
    promote_when: Promote | None = None


@dataclass(frozen=True)
class Pending:
    """How many predictions and labels wait for each other, and for how long.

    Parameters
    ----------
    max : predictions waiting for labels, and labels waiting for their features; beyond it
        the oldest is evicted (reported as ``evicted`` or ``overflow``)
    max_delay_ms : a label later than this after its features is refused (reported)
    label_wait_ms : a label whose features have not come is held until the features' event
        time passes the label's by this much, then reported as ``unknown``
    """

    max: int = 100_000
    max_delay_ms: int | None = None
    label_wait_ms: int = 60_000


@dataclass(frozen=True)
class LearnerSpec(NodeKind):
    """How a learner node is wired: its kind (see :class:`doa.node.NodeKind`).

    The groups' fields, flat, with the streams as names; ``compiled`` is what the node
    decided (True: it runs the compiled model); ``model_name`` and ``metric_name`` are for
    the live view and the catalog; ``model_kind`` is the model's kind
    (:func:`doa.learner.checks.kind_of`), the label field's type is checked against it.
    """

    kind = "learner"
    name: str
    features: str
    labels: str | None
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
    model_name: str = ""
    metric_name: str = ""
    shadow: str | None = None
    challenger: Any = field(default=None, compare=False, repr=False)
    promote_when: Promote | None = None
    model_kind: str = ""

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        reads = (self.labels, self.features, self.drift, self.control)
        writes = (self.predictions, self.outcomes, self.metrics, self.unmatched, self.models,
                  self.shadow)
        return tuple(s for s in reads if s is not None), tuple(s for s in writes if s is not None)

    def start(self) -> None:
        """Compile the model's kernels when it runs compiled."""
        if self.compiled:
            from doa.compiled import warm_up

            warm_up()

    def _numbers_only(self, node: Node, streams: StreamInfo) -> list[str]:
        """A compiled model takes numbers: a feature field of another type is refused here,
        not found at run time in every record's dead letter."""
        fields = streams.fields(self.features) if self.compiled else None
        if not fields:
            return []
        return [f"learner {node.name!r}: feature field {name!r} of stream {self.features!r} is "
                f"{_type(fields[name])}: a compiled model takes numbers (int, long, float, double, "
                "boolean); compiled=False runs River's own model"
                for name in self.feature_fields or () if name in fields
                and not _numeric(fields[name])]

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """The join field is in both inputs, the label in the labels, the feature fields in
        the features; each stream of a role has doa's schema for that role; the label's type
        fits the model and the drift stream reaches the right partition
        (:mod:`doa.learner.checks`)."""
        from doa.learner.checks import drift_problems, label_problems

        if self.labels is None:
            return [*self._unlabelled(node, streams), *drift_problems(self, streams)]
        out = [*missing_fields(node, streams, self.features, [self.join], "join"),
               *missing_fields(node, streams, self.labels, [self.join], "join"),
               *missing_fields(node, streams, self.labels, [self.label], "label"),
               *missing_fields(node, streams, self.features, self.feature_fields or (),
                               "feature"),
               *self._numbers_only(node, streams), *label_problems(self, streams),
               *drift_problems(self, streams)]
        return out + self._schemas(node, streams)

    def _unlabelled(self, node: Node, streams: StreamInfo) -> list[str]:
        """No label stream: only an anomaly detector learns, on every record; nothing that
        needs a label (outcomes, a metric, a challenger) is declared."""
        if self.model_kind != "anomaly detector":
            return [f"learner {node.name!r}: no labels= and its model {self.model_name} is a "
                    f"{self.model_kind}: it learns from labels; declare a label stream "
                    "(Inputs(features, labels)) or use an anomaly detector (it learns on "
                    "every record)"]
        needs = [f"{role}=" for role in ("outcomes", "metrics", "unmatched", "shadow",
                                         "challenger") if getattr(self, role) is not None]
        out = [f"learner {node.name!r}: no labels=, but {', '.join(needs)} need labels: "
               "declare a label stream or leave them out"] if needs else []
        return [*out, *missing_fields(node, streams, self.features, [self.join], "join"),
                *missing_fields(node, streams, self.features, self.feature_fields or (),
                                "feature"),
                *self._numbers_only(node, streams), *self._schemas(node, streams)]

    def _schemas(self, node: Node, streams: StreamInfo) -> list[str]:
        """Each stream of a role has doa's schema for that role."""
        out: list[str] = []
        for role, expected in LEARNER_SCHEMAS.items():
            stream = getattr(self, role)
            declared = streams.schema(stream) if stream is not None else None
            if declared is not None and declared != expected:
                out.append(f"learner {node.name!r}: its {role} stream {stream!r} must have "
                           f"schema {expected}, not {declared}")
        return out

    def commands(self) -> dict[str, str]:
        """The control stream (``doa model rollback``, ``promote`` write it)."""
        return {} if self.control is None else {self.control: "control"}

    def describe(self) -> dict[str, Any]:
        roles = {r: getattr(self, r) for r in _ROLES if getattr(self, r) is not None}
        return {"model": self.model_name, "metric": self.metric_name,
                "compiled": bool(self.compiled), "join": self.join, "label": self.label,
                "key": self.key, "features": None if self.feature_fields is None
                else list(self.feature_fields),
                "on_drift": self.on_drift, "version_every": self.version_every,
                "challenger": None if self.challenger is None else str(self.challenger),
                "promote_when": None if self.promote_when is None else
                {"margin": self.promote_when.margin,
                 "after_labels": self.promote_when.after_labels},
                "streams": roles}


def resolve(name: str, *, reads: Inputs, writes: Outputs, versions: Versions | None = None,
            pending: Pending | None = None, compiled: bool | None = None,
            model: Any = None, metric: Any = None) -> LearnerSpec:
    """The :class:`LearnerSpec` of learner ``name`` from its groups (missing ones: defaults)."""
    from doa.learner.checks import kind_of
    from doa.learner.versions import POLICIES

    v, p = versions or Versions(), pending or Pending()
    if v.on_drift not in POLICIES:
        raise ValueError(f"learner {name!r}: on_drift must be one of {POLICIES}, "
                         f"got {v.on_drift!r}")
    if v.promote_when is not None and v.challenger is None:
        raise ValueError(f"learner {name!r}: promote_when= decides between the live model "
                         "and a challenger; give challenger= too")
    return LearnerSpec(
        name, str(stream_name(reads.features)), stream_name(reads.labels),
        str(stream_name(writes.predictions)), stream_name(writes.outcomes),
        stream_name(writes.metrics), stream_name(writes.unmatched), reads.join, reads.label,
        tuple(reads.feature_fields) if reads.feature_fields is not None else None, reads.key,
        p.max, p.max_delay_ms, writes.metrics_every, v.every, stream_name(writes.models),
        stream_name(v.control), stream_name(v.drift), v.on_drift, v.keep, compiled,
        p.label_wait_ms, "" if model is None else str(model),
        "" if metric is None else type(metric).__name__, stream_name(writes.shadow),
        v.challenger, v.promote_when, "" if model is None else kind_of(model))


# learner_node's flat keywords: keyword -> (group, field of the group)
FLAT = {**{f.name: ("reads", f.name) for f in fields(Inputs)},
        **{f.name: ("writes", f.name) for f in fields(Outputs)},
        "version_every": ("versions", "every"), "keep_versions": ("versions", "keep"),
        "control": ("versions", "control"), "drift": ("versions", "drift"),
        "on_drift": ("versions", "on_drift"), "challenger": ("versions", "challenger"),
        "promote_when": ("versions", "promote_when"), "max_pending": ("pending", "max"),
        "max_delay_ms": ("pending", "max_delay_ms"),
        "label_wait_ms": ("pending", "label_wait_ms")}
GROUPS: dict[str, Any] = {"reads": Inputs, "writes": Outputs, "versions": Versions,
                          "pending": Pending}


def group(name: str, given: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """The four groups from what was given as groups and as flat keywords (not None).

    Raises TypeError if a group and one of its flat keywords are both given, or if a
    required stream is missing.
    """
    out = {g: v for g, v in given.items() if v is not None}
    parts: dict[str, dict[str, Any]] = {}
    for keyword, value in flat.items():
        if value is None:
            continue
        g, f = FLAT[keyword]
        if g in out:
            raise TypeError(f"learner {name!r}: {keyword}= and {g}= both given; give "
                            f"{keyword} in {g}= ({GROUPS[g].__name__}.{f})")
        parts.setdefault(g, {})[f] = value
    for g, kw in parts.items():
        try:
            out[g] = GROUPS[g](**kw)
        except TypeError as exc:  # a required stream missing
            raise TypeError(f"learner {name!r}: {g}: {exc}") from exc
    for g in ("reads", "writes"):
        if g not in out:
            need = "features= (and labels=)" if g == "reads" else "predictions="
            raise TypeError(f"learner {name!r}: give {g}= ({GROUPS[g].__name__}) or {need}")
    return out


_NUMBERS = {"int", "long", "float", "double", "boolean"}


def _numeric(avro: Any) -> bool:
    """An Avro type a compiled model can take: a number or boolean, optionally null.

    >>> [_numeric(t) for t in ("double", ["null", "long"], {"type": "long",
    ...  "logicalType": "timestamp-millis"}, "string", ["null", "string"])]
    [True, True, True, False, False]
    """
    if isinstance(avro, list):
        return all(_numeric(t) for t in avro if t != "null") and any(t != "null" for t in avro)
    if isinstance(avro, dict):
        return _numeric(avro.get("type"))
    return avro in _NUMBERS


def _type(avro: Any) -> str:
    """An Avro type as a message shows it: ``string``, ``null | string``."""
    if isinstance(avro, list):
        return " | ".join(_type(t) for t in avro)
    if isinstance(avro, dict):
        return str(avro.get("name") or avro.get("type"))
    return str(avro)
