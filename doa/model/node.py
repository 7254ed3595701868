"""Model nodes: a pre-trained model scores whole micro-batches of records.

``topology.model(name, reads=..., writes=..., model=..., features=[...])`` declares one. On each
batch the node builds one 2-D array of the declared feature fields (one row per record, the
columns in the declared order) and calls the model *once* (see :mod:`doa.model.formats` for
the supported kinds: scikit-learn, ONNX, River used frozen, any ``predict_batch`` object).
Each record yields one ``doa.Prediction`` (its ``features`` are what the model saw, its
``model_version`` the version that made it), or the record the ``output`` function builds
from the input event and that prediction, for a stream of the user's own schema. Every
output's lineage header carries the model version too (:class:`doa.events.Out`).

The model is loaded by the node kind's start hook (:meth:`ModelSpec.start`), once per
process, never at import; a file that does not load is one error naming the node and file.
A record whose feature is missing or not a number makes the batch fail and is retried alone
by the runtime, so only that record becomes a dead letter.

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
('model', ('claims',), ('payouts',), 'predict_batch')
>>> node.spec.start()  # the runtime does this before the first batch
>>> batch = [Event({"claim_id": "c1", "amount": 500.0}, stream="claims", partition=0,
...                offset=0, timestamp=10)]
>>> state, [out] = node.step(node.state(), batch)
>>> out.record["join"], out.record["prediction"], out.record["features"], out.model_version
('c1', 400.0, {'amount': 500.0}, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from doa.events import Out
from doa.model.formats import Scorer, describe, load
from doa.node import Node, NodeKind, Stream, missing_fields, stream_name, stream_names

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["PREDICTION_SCHEMA", "ModelSpec", "model_node"]

PREDICTION_SCHEMA = "doa.Prediction"
Output = Callable[[Any, dict[str, Any]], dict[str, Any]]


class _Loaded:
    """Where a node keeps its loaded model (filled by the start hook; never in the state)."""

    def __init__(self) -> None:
        self.scorer: Scorer | None = None


@dataclass(frozen=True)
class ModelSpec(NodeKind):
    """The kind of a model node (see :class:`doa.node.NodeKind`).

    Attributes
    ----------
    name : the node's name (the ``model`` of its predictions)
    reads : the streams scored; predictions : the stream written
    features : the feature fields, in the order of the model's columns
    join, key : fields copied to the predictions' ``join`` and ``key`` (``join`` None: the
        input event's id, hex)
    format, source : what :func:`doa.model.formats.describe` says of the model
    version : the model version its outputs carry
    custom_output : True when an ``output`` function builds the records (user's schema)
    """

    kind = "model"
    name: str
    reads: tuple[str, ...]
    predictions: str
    features: tuple[str, ...]
    join: str | None
    key: str | None
    format: str
    source: str
    version: int = 1
    custom_output: bool = False
    model: Any = field(default=None, compare=False, repr=False)
    classes: tuple[Any, ...] | None = None
    loaded: _Loaded = field(default_factory=_Loaded, compare=False, repr=False)

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.reads, (self.predictions,)

    def start(self) -> None:
        """Load the model (a file is read here, not at import)."""
        if self.loaded.scorer is None:
            self.loaded.scorer = load(self.model, node=self.name, features=self.features,
                                      classes=self.classes)

    def scorer(self) -> Scorer:
        """The loaded model (loaded now if the start hook has not run)."""
        self.start()
        assert self.loaded.scorer is not None
        return self.loaded.scorer

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """The features (and join, key) are fields of every stream read; without an
        ``output`` function the written stream has schema doa.Prediction."""
        out: list[str] = []
        for stream in self.reads:
            out += missing_fields(node, streams, stream, self.features, "feature")
            out += missing_fields(node, streams, stream, [f for f in (self.join, self.key)
                                                          if f is not None], "join/key")
        declared = streams.schema(self.predictions)
        if not self.custom_output and declared is not None and declared != PREDICTION_SCHEMA:
            out.append(f"model {node.name!r}: it writes {PREDICTION_SCHEMA} records, stream "
                       f"{self.predictions!r} has schema {declared} (give output= to build "
                       "records of your own schema)")
        return out

    def describe(self) -> dict[str, Any]:
        return {"model": self.source, "format": self.format, "version": self.version,
                "features": list(self.features), "join": self.join, "key": self.key,
                "streams": {"inputs": list(self.reads), "predictions": self.predictions}}


def model_node(name: str, *, reads: Stream | str | Iterable[Stream | str],
               writes: Stream | str, model: Any, features: Sequence[str],
               join: str | None = None, key: str | None = None, version: int = 1,
               output: Output | None = None, classes: Sequence[Any] | None = None) -> Node:
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
    version : the model version the outputs carry
    output : ``output(event, prediction) -> record`` for a stream of your own schema
    classes : names of an ONNX model's probability columns (exported without ``zipmap``)
    """
    if not features:
        raise ValueError(f"model {name!r}: features= must name at least one field")
    fmt, source = describe(model)
    spec = ModelSpec(name, stream_names(reads), str(stream_name(writes)), tuple(features),
                     join, key, fmt, source, version, output is not None, model,
                     None if classes is None else tuple(classes))
    return spec.node(name, _step(spec, output), lambda: {"scored": 0, "version": version})


def _step(spec: ModelSpec, output: Output | None) -> Callable[[Any, list[Any]], Any]:
    features = spec.features
    row = itemgetter(*features)
    width = len(features)

    def matrix(batch: list[Any]) -> np.ndarray[Any, Any]:
        try:
            return np.array([row(e) for e in batch], dtype=np.float64).reshape(len(batch), width)
        except (KeyError, TypeError, ValueError):
            for e in batch:  # name the record and field that is not a number
                for f in features:
                    value = e.get(f)
                    if not isinstance(value, (int, float)):
                        raise ValueError(f"model {spec.name!r}: stream {e.stream!r} partition "
                                         f"{e.partition} offset {e.offset}: feature field "
                                         f"{f!r} is {value!r}, not a number") from None
            raise

    def step(state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
        X = matrix(batch)
        scored = spec.scorer().score(X)
        version = state["version"]
        probabilities = scored.probabilities or [{}] * len(batch)
        scores: list[float | None] = [*scored.scores] if scored.scores else [None] * len(batch)
        out: list[Any] = []
        for e, values, prediction, proba, score in zip(batch, X.tolist(), scored.predictions,
                                                       probabilities, scores, strict=True):
            record = {
                "join": str(e[spec.join]) if spec.join is not None else e.id.hex(),
                "key": None if spec.key is None or e.get(spec.key) is None else str(e[spec.key]),
                "model": spec.name, "model_version": version, "prediction": prediction,
                "probabilities": proba, "score": score,
                "features": dict(zip(features, values, strict=True)), "categories": {},
                "timestamp": e.timestamp,
            }
            out.append(Out(e, record if output is None else output(e, record), None, version))
        state["scored"] += len(batch)
        return state, out

    return step
