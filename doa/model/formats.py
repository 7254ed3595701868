"""Loading a trained model and scoring a whole batch with one vectorized call.

A model node (:mod:`doa.model.node`) hands its scorer a 2-D ``float64`` array, one row per
record and one column per declared feature field, in the declared order. :func:`load` turns
what the topology gave (a file path or an object) into a :class:`Scorer`:

- a scikit-learn estimator or pipeline (an object, or a ``.pkl``/``.pickle``/``.joblib`` file):
  ``predict_proba`` when it has one (the label is the most probable class, as scikit-learn's
  classifiers predict), else ``predict``;
- an ONNX model (a ``.onnx`` file or an ``onnxruntime.InferenceSession``; extra ``doa[onnx]``):
  one ``session.run`` per batch, its first output the labels, its second (if any) the
  probabilities, as ``skl2onnx`` exports classifiers (with or without ``zipmap``);
- a River model, used frozen (it never learns): ``predict_proba_many`` / ``predict_many`` on
  a ``pandas.DataFrame`` when it has them, else one ``*_one`` call per row;
- any object with a ``predict_batch(X)`` method (the :class:`PredictBatch` protocol).

Examples
--------
>>> import numpy as np
>>> class Doubler:
...     def predict_batch(self, X):
...         return X[:, 0] * 2
>>> scorer = load(Doubler(), node="double", features=("x",))
>>> scorer.format, scorer.score(np.array([[1.0], [2.5]])).predictions
('predict_batch', [2.0, 5.0])
>>> load("missing.pkl", node="claims", features=("x",))
Traceback (most recent call last):
...
doa.model.formats.ModelLoadError: model node 'claims': cannot load model file 'missing.pkl': ...
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from doa.errors import DoaError
from doa.model.inputs import input_names, input_width, not_numbers, other_names, other_width

__all__ = ["FeatureNamesError", "ModelLoadError", "PredictBatch", "Scored", "Scorer",
           "describe", "file_format", "input_width", "load", "misnamed", "not_numbers"]

ONNX_SUFFIXES = (".onnx",)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class ModelLoadError(DoaError):
    """A model node's model could not be loaded (the message names the node and the file)."""


class FeatureNamesError(ModelLoadError):
    """A model names its features otherwise, or in another order, than its node declares
    (:func:`doa.model.inputs.other_names`): ``doa check`` says so too."""


@runtime_checkable
class PredictBatch(Protocol):
    """Any model doa can run: one call scores a whole batch.

    ``predict_batch(X)`` gets a 2-D ``float64`` array (rows: records, columns: the node's
    feature fields in declared order) and returns either a 1-D array of predictions (labels
    or values, one per row) or a 2-D array of class probabilities (one column per class; the
    class names are the object's ``classes_`` if it has one, else the column numbers).

    Examples
    --------
    >>> import numpy as np
    >>> class Threshold:
    ...     classes_ = ["low", "high"]
    ...     def predict_batch(self, X):
    ...         p = (X[:, 0] > 10).astype(float)
    ...         return np.column_stack([1 - p, p])
    >>> isinstance(Threshold(), PredictBatch)
    True
    >>> load(Threshold(), node="n", features=("amount",)).score(np.array([[3.0], [40.0]]))
    Scored(predictions=['low', 'high'], probabilities=[{'low': 1.0, 'high': 0.0}, \
{'low': 0.0, 'high': 1.0}], scores=None)
    """

    def predict_batch(self, X: np.ndarray[Any, Any]) -> Any:
        """Predictions (1-D) or class probabilities (2-D) for the rows of ``X``."""


class Scored(NamedTuple):
    """A batch's results, one item per row: predictions, class probabilities (None for
    regressors), anomaly scores (None unless the model scores anomalies)."""

    predictions: list[Any]
    probabilities: list[dict[str, float]] | None
    scores: list[float] | None


class Scorer:
    """A loaded model: :meth:`score` runs it once on a batch's feature matrix."""

    format = "?"

    def score(self, X: np.ndarray[Any, Any]) -> Scored:
        """The model's results for the rows of ``X`` (one vectorized call)."""
        raise NotImplementedError


def _natives(values: Any) -> list[Any]:
    """Plain Python values (numpy scalars become int, float, bool, str)."""
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    return [v.item() if hasattr(v, "item") else v for v in items]


def _from_proba(proba: Any, classes: Sequence[Any]) -> Scored:
    """Labels (argmax, as scikit-learn's classifiers predict) and per-class dicts."""
    proba = np.asarray(proba, dtype=np.float64)
    names = [str(c) for c in classes]
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(proba) else []
    rows = [dict(zip(names, row, strict=True)) for row in proba.tolist()]
    return Scored(_natives(labels), rows, None)


def _classes(model: Any, width: int) -> list[Any]:
    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else list(range(width))


class SklearnScorer(Scorer):
    """A scikit-learn estimator or pipeline (or anything with ``predict_proba``/``predict``
    on a 2-D array)."""

    format = "sklearn"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.proba = callable(getattr(model, "predict_proba", None))
        self.named = input_names(model) is not None  # checked against the node's features

    def score(self, X: np.ndarray[Any, Any]) -> Scored:
        if self.named:  # its names are the node's, in order: sklearn's warning is noise
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "X does not have valid feature names")
                return self._score(X)
        return self._score(X)

    def _score(self, X: np.ndarray[Any, Any]) -> Scored:
        if self.proba:
            proba = self.model.predict_proba(X)
            return _from_proba(proba, _classes(self.model, proba.shape[1]))
        return Scored(_natives(np.asarray(self.model.predict(X)).ravel()), None, None)


class BatchScorer(Scorer):
    """An object of the :class:`PredictBatch` protocol."""

    format = "predict_batch"

    def __init__(self, model: Any) -> None:
        self.model = model

    def score(self, X: np.ndarray[Any, Any]) -> Scored:
        out = np.asarray(self.model.predict_batch(X))
        if out.ndim == 2:
            return _from_proba(out, _classes(self.model, out.shape[1]))
        return Scored(_natives(out.ravel()), None, None)


class OnnxScorer(Scorer):
    """An ``onnxruntime.InferenceSession`` of a model with one 2-D input; ``classes``
    (given) name its probability columns, in order, and its labels are those names."""

    format = "onnx"

    def __init__(self, session: Any, node: str, where: str,
                 classes: Sequence[Any] | None = None) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"model node {node!r}: ONNX model {where} has {len(inputs)} "
                                 "inputs; doa feeds one 2-D tensor of the feature fields "
                                 "(export with a single input, e.g. skl2onnx.to_onnx(model, X))")
        self.session = session
        self.input = inputs[0].name
        self.dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
        self.classes = None if classes is None else list(classes)

    def score(self, X: np.ndarray[Any, Any]) -> Scored:
        outputs = self.session.run(None, {self.input: X.astype(self.dtype, copy=False)})
        labels = _natives(np.asarray(outputs[0]).ravel())
        if len(outputs) < 2:  # a regressor: one output of values
            return Scored(labels, None, None)
        proba = outputs[1]
        if isinstance(proba, list):  # zipmap: one {class: probability} per row
            if self.classes is None:
                return Scored(labels, [{str(k): float(v) for k, v in row.items()}
                                       for row in proba], None)
            proba = [list(row.values()) for row in proba]  # its columns, in its classes' order
        if self.classes is not None:  # named classes: the labels are theirs too (argmax)
            return _from_proba(np.asarray(proba, dtype=np.float64).reshape(len(X), -1),
                               self.classes)
        proba = np.asarray(proba, dtype=np.float64)
        names = [str(c) for c in range(proba.shape[1])]
        return Scored(labels, [dict(zip(names, row, strict=True)) for row in proba.tolist()], None)


class RiverScorer(Scorer):
    """A River model used frozen: it predicts, it never learns."""

    format = "river"

    def __init__(self, model: Any, features: Sequence[str]) -> None:
        from river import base

        self.model = model
        self.features = list(features)
        self.classifier = isinstance(model, base.Classifier)
        self.anomaly = isinstance(model, base.AnomalyDetector)

    def score(self, X: np.ndarray[Any, Any]) -> Scored:
        model = self.model
        if self.anomaly:
            return Scored([None] * len(X), None, [float(model.score_one(x)) for x in self._rows(X)])
        many = getattr(model, "predict_proba_many" if self.classifier else "predict_many", None)
        if callable(many) and len(X):
            import pandas as pd

            out = many(pd.DataFrame(X, columns=self.features))
            if self.classifier:
                return _from_proba(out.to_numpy(), list(out.columns))
            return Scored(_natives(np.asarray(out)), None, None)
        if self.classifier:
            rows = [model.predict_proba_one(x) for x in self._rows(X)]
            labels = [max(p, key=p.__getitem__) if p else None for p in rows]
            return Scored(_natives(labels), [{str(k): float(v) for k, v in p.items()}
                                             for p in rows], None)
        return Scored(_natives([model.predict_one(x) for x in self._rows(X)]), None, None)

    def _rows(self, X: np.ndarray[Any, Any]) -> list[dict[str, float]]:
        return [dict(zip(self.features, row, strict=True)) for row in X.tolist()]


def describe(model: Any) -> tuple[str, str]:
    """``(format, source)`` of what a topology gave as a model, without loading it.

    Examples
    --------
    >>> describe("models/claims.onnx"), describe("tree.joblib")
    (('onnx', 'models/claims.onnx'), ('sklearn', 'tree.joblib'))
    """
    if isinstance(model, (str, Path)):
        fmt = "onnx" if Path(model).suffix.lower() in ONNX_SUFFIXES else "sklearn"
        return fmt, str(model)
    return _format_of(model), type(model).__name__


def file_format(path: str | Path, *, node: str) -> str:
    """The format of a model file by its extension (``onnx`` or ``sklearn``).

    Raises :class:`ModelLoadError` for an extension no loader reads.

    Examples
    --------
    >>> file_format("models/claims.onnx", node="payout"), file_format("a.joblib", node="payout")
    ('onnx', 'sklearn')
    >>> file_format("model.txt", node="payout")
    Traceback (most recent call last):
    ...
    doa.model.formats.ModelLoadError: model node 'payout': unknown model format '.txt' for \
model.txt (expected .onnx, .joblib, .pkl, .pickle)
    """
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in PICKLE_SUFFIXES:
        return "sklearn"
    raise ModelLoadError(f"model node {node!r}: unknown model format {suffix or '(none)'!r} "
                         f"for {path} (expected {', '.join(ONNX_SUFFIXES + PICKLE_SUFFIXES)})")


def _format_of(model: Any) -> str:
    if callable(getattr(model, "predict_batch", None)):
        return "predict_batch"
    if type(model).__module__.startswith("onnxruntime"):
        return "onnx"
    if type(model).__module__.startswith("river") and hasattr(model, "learn_one"):
        return "river"
    if callable(getattr(model, "predict_proba", None)) or callable(getattr(model, "predict",
                                                                            None)):
        return "sklearn"
    return "?"


def load(model: Any, *, node: str, features: Sequence[str],
         classes: Sequence[Any] | None = None, what: str | None = None) -> Scorer:
    """The :class:`Scorer` of ``model``: a file path (``.onnx``, else a pickle or joblib
    file) or an object; ``classes`` names an ONNX model's probability columns; ``what``
    names the model in errors (default: its file, else ``model``).

    Raises :class:`ModelLoadError` naming the node and the file when it cannot be loaded,
    when the object is of no supported kind, or when the model says it expects another
    number of input features than ``features`` has, or names them in another order
    (:class:`FeatureNamesError`; :mod:`doa.model.inputs`).

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> load(DummyRegressor().fit([[1.0, 2.0]], [0.0]), node="n", features=["x"])
    Traceback (most recent call last):
    ...
    doa.model.formats.ModelLoadError: model node 'n': model (DummyRegressor) expects 2 input \
features, the node declares 1 (x)
    """
    where = repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__
    if isinstance(model, (str, Path)):
        what = what or f"model file {str(model)!r}"
        model = _read(Path(model), node)
    problem = other_width(model, node=node, features=features, what=what or "model")
    if problem is not None:
        raise ModelLoadError(problem)
    problem = other_names(model, node=node, features=features, what=what or "model")
    if problem is not None:
        raise FeatureNamesError(problem)
    fmt = _format_of(model)
    if fmt == "predict_batch":
        return BatchScorer(model)
    if fmt == "onnx":
        return OnnxScorer(model, node, where, classes)
    if fmt == "river":
        return RiverScorer(model, features)
    if fmt == "sklearn":
        return SklearnScorer(model)
    raise ModelLoadError(f"model node {node!r}: model {where} ({type(model).__name__}) has no "
                         "predict_batch, predict_proba or predict method, and is not an "
                         "ONNX session or a River model")


def _read(path: Path, node: str) -> Any:
    try:
        if path.suffix.lower() in ONNX_SUFFIXES:
            import onnxruntime

            return onnxruntime.InferenceSession(str(path),
                                                providers=["CPUExecutionProvider"])
        try:
            import joblib
        except ImportError:  # scikit-learn not installed: plain pickles still load
            with path.open("rb") as f:
                return pickle.load(f)
        return joblib.load(path)
    except Exception as exc:
        head = path.read_bytes()[:2] if path.is_file() else b""
        raise ModelLoadError(f"model node {node!r}: cannot load model file {str(path)!r}: "
                             f"{misnamed(path, head) or _cause(exc)}") from None


def _cause(exc: Exception) -> str:  # a library's message may run on for lines: its first
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def misnamed(path: str | Path, head: bytes) -> str | None:
    """What a model file that did not load looks like, when its first bytes say it is of
    the other format than its extension (an ONNX model named ``.joblib``, a pickle named
    ``.onnx``), and the name it should have; None when they do not say so.

    Examples
    --------
    >>> misnamed("gbr.joblib", b"\\x08\\x08\\x12\\x08skl2onnx")
    'it looks like an ONNX model (protobuf), not a pickle: name it gbr.onnx'
    >>> misnamed("gbr.onnx", b"\\x80\\x04\\x95")
    'it looks like a pickle (joblib), not an ONNX model: name it gbr.joblib'
    >>> misnamed("gbr.joblib", b"\\x80\\x04\\x95") is None
    True
    """
    path = Path(path)
    onnx = path.suffix.lower() in ONNX_SUFFIXES
    looks_onnx = len(head) > 1 and head[0] == 0x08 and 1 <= head[1] <= 20  # ir_version
    looks_pickle = len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5  # PROTO 2-5
    if looks_onnx and not onnx:
        return (f"it looks like an ONNX model (protobuf), not a pickle: name it "
                f"{path.with_suffix('.onnx').name}")
    if looks_pickle and onnx:
        return (f"it looks like a pickle (joblib), not an ONNX model: name it "
                f"{path.with_suffix('.joblib').name}")
    return None
