"""CompiledModel: a River model's state in arrays, run by a Numba kernel one batch per call."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from doa.compiled import convert
from doa.compiled import kernels as K

__all__ = ["LEARN", "PREDICT", "CompiledModel", "compile_model"]

F64 = npt.NDArray[np.float64]
PREDICT = K.PREDICT
LEARN = K.LEARN
_TARGET = {"regressor": 1, "classifier": 2}  # kernels.check_batch's target checks
_NO_TARGETS = np.zeros(4096)                   # y when nothing reads it (never written)
_ARTICLE = {"classifier": "a classifier", "regressor": "a regressor",
            "anomaly": "an anomaly detector", "transformer": "a transformer"}


def compile_model(model: Any, features: Sequence[str]) -> CompiledModel:
    """The compiled equivalent of a River ``model``, fresh or trained, with the same state.

    ``features`` fixes the columns of ``X`` and must be the order in which the River model
    would see the keys of ``x`` (e.g. the learner's ``feature_fields``): River sums the dot
    product in that order, so the order is part of the arithmetic. ``model`` itself is not
    modified. Raises :class:`UnsupportedModel` (a ``ValueError``) saying why when
    :func:`doa.compiled.supports` is false.

    Examples
    --------
    >>> from river import linear_model, preprocessing
    >>> river_model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    >>> cm = compile_model(river_model, ["a", "b"])
    >>> cm.kind, cm.n_outputs
    ('classifier', 1)
    >>> X = np.array([[1.0, 2.0], [3.0, 1.0], [2.0, 2.0]])
    >>> out = cm.run_ops(np.array([PREDICT, LEARN, LEARN], dtype=np.int8), X,
    ...                  np.array([np.nan, 1.0, 0.0]))
    >>> out.tolist()                    # p(True) before learning; LEARN rows stay NaN
    [[0.5], [nan], [nan]]
    >>> back = cm.to_river()
    >>> back.predict_proba_one({"a": 1.0, "b": 0.0}) == cm.predict_proba_one({"a": 1.0, "b": 0.0})
    True
    """
    return CompiledModel(convert.read(model, features))


def _writable(a: Any) -> Any:
    """A read-only array would make numba compile another specialization: copy it."""
    return a if a.flags.writeable else a.copy()


class CompiledModel:
    """A supported River model compiled to arrays; see :func:`compile_model`.

    ``kind`` is ``"classifier"`` (output: p(True), River's ``predict_proba_one(x)[True]``),
    ``"regressor"`` (River's ``predict_one``), ``"anomaly"`` (``score_one``) or
    ``"transformer"`` (``transform_one``: one output per feature). It pickles (arrays and a
    River template); :meth:`to_river` gives the River object back.
    """

    def __init__(self, parts: convert.Parts) -> None:
        self._parts = parts

    # -- description ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self._parts.kind

    @property
    def features(self) -> tuple[str, ...]:
        return self._parts.features

    @property
    def n_outputs(self) -> int:
        return len(self.features) if self.kind == "transformer" else 1

    @property
    def supervised(self) -> bool:
        return self.kind in ("classifier", "regressor")

    def __repr__(self) -> str:
        return (f"CompiledModel({self.kind}, {len(self.features)} features, "
                f"{type(self._parts.template).__name__})")

    # -- the batch call ------------------------------------------------------------------------
    def run_ops(self, kinds: Any, X: Any, y: Any = None, out: F64 | None = None, *,
                python: bool = False) -> F64:
        """Run a sequence of operations in order, in one kernel call; return ``out``.

        ``kinds[i]`` is :data:`PREDICT` (write the prediction for row ``X[i]`` from the
        current state to ``out[i, :]``) or :data:`LEARN` (learn on ``X[i]`` and, for
        supervised models, ``y[i]``; ``out[i, :]`` is set to NaN). Each operation sees the
        state the previous ones left: the same as calling River's ``predict_*_one`` /
        ``learn_one`` in that order. ``y`` (bools as 0/1) is read on LEARN rows only and may
        be None for unsupervised models; ``out`` (float64 ``[n, n_outputs]``, C-contiguous)
        is allocated when None. The whole batch is checked before anything runs: a bad kind,
        a non-finite feature or a bad target raises ``ValueError`` naming the row (and
        feature), and the state is untouched. ``python=True`` runs the kernels' pure-Python
        twins (``py_func``), for tests.
        """
        p = self._parts
        k = _writable(np.ascontiguousarray(kinds, dtype=np.int8))
        x = _writable(np.ascontiguousarray(X, dtype=np.float64))
        n, d = k.shape[0], len(p.features)
        if k.ndim != 1 or x.shape != (n, d):
            raise ValueError(f"compiled model: X must have shape ({n}, {d}) for {n} "
                             f"operations and features {list(p.features)}, got {x.shape}")
        targets = self._targets(k, y, n)
        bad = K.check_batch(k, x, targets, _TARGET.get(p.kind, 0))
        if bad >= 0:
            self._reject(bad // 3, bad % 3, x, targets)
        if out is None:
            out = np.empty((n, self.n_outputs))
        elif out.shape != (n, self.n_outputs) or out.dtype != np.float64 \
                or not out.flags.c_contiguous:
            raise ValueError(f"compiled model: out must be a C-contiguous float64 array of "
                             f"shape ({n}, {self.n_outputs})")
        if p.kind == "anomaly":
            fn = K.run_hst.py_func if python else K.run_hst
            fn(k, x, out, p.stage_kinds, p.stages, p.feat, p.thr, p.mass, p.state, p.params)
        else:
            fn = K.run_linear.py_func if python else K.run_linear
            fn(k, x, targets, out, p.stage_kinds, p.stages, p.weights, p.state, p.params)
        return out

    def _targets(self, k: npt.NDArray[np.int8], y: Any, n: int) -> F64:
        if y is None:
            if self.supervised and (k == LEARN).any():
                raise ValueError(f"compiled model: a {self.kind} needs y for LEARN "
                                 "operations")
            return _NO_TARGETS if n <= len(_NO_TARGETS) else np.zeros(n)
        t: F64 = _writable(np.ascontiguousarray(y, dtype=np.float64))
        if t.shape != (n,):
            raise ValueError(f"compiled model: y must have shape ({n},), got {t.shape}")
        return t

    def _reject(self, i: int, what: int, x: F64, y: F64) -> None:
        if what == 0:
            raise ValueError(f"compiled model: kinds must be PREDICT ({PREDICT}) or LEARN "
                             f"({LEARN}); operation {i} is not")
        if what == 1:
            j = int(np.argmax(~np.isfinite(x[i])))
            raise ValueError(f"compiled model: feature {self.features[j]!r} of row {i} is "
                             f"{x[i, j]}: features must be finite (River would learn from it "
                             "and every later prediction would be NaN); nothing was run")
        need = "False/True (0/1)" if self.kind == "classifier" else "a finite number"
        raise ValueError(f"compiled model: y of LEARN row {i} is {y[i]}: a {self.kind} needs "
                         f"{need}; nothing was run")

    # -- dict conveniences (one kernel call per event) ----------------------------------------
    def rows(self, xs: Iterable[Mapping[str, Any]]) -> F64:
        """``X`` for feature dicts: ``X[i, j] = float(xs[i][features[j]])`` (bools as 0/1)."""
        fs = self.features
        get = operator.itemgetter(*fs)
        try:
            values = (map(get, xs) if len(fs) == 1
                      else itertools.chain.from_iterable(map(get, xs)))
            flat = np.fromiter(values, dtype=np.float64)
        except KeyError as exc:
            raise ValueError(f"compiled model: feature {exc.args[0]!r} is missing; features "
                             f"are {list(fs)}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"compiled model: features must be numbers ({exc})") from None
        return flat.reshape(-1, len(fs))

    def _one(self, kind: int, x: Mapping[str, Any], y: Any = None) -> F64:
        target = None if y is None else np.array([float(y)])
        row: F64 = self.run_ops(np.array([kind], dtype=np.int8), self.rows([x]), target)[0]
        return row

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[bool, float]:
        """River's ``LogisticRegression.predict_proba_one``: ``{False: 1 - p, True: p}``."""
        self._need("classifier")
        p = float(self._one(PREDICT, x)[0])
        return {False: 1.0 - p, True: p}

    def predict_one(self, x: Mapping[str, Any]) -> Any:
        """River's ``predict_one``: a bool (classifier, the likelier class) or a float."""
        if self.kind == "classifier":
            proba = self.predict_proba_one(x)
            return max(proba, key=proba.__getitem__)
        self._need("regressor")
        return float(self._one(PREDICT, x)[0])

    def score_one(self, x: Mapping[str, Any]) -> float:
        """River's ``HalfSpaceTrees.score_one`` (high: anomalous)."""
        self._need("anomaly")
        return float(self._one(PREDICT, x)[0])

    def transform_one(self, x: Mapping[str, Any]) -> dict[str, float]:
        """River's ``transform_one`` of a scaler (pipeline)."""
        self._need("transformer")
        return dict(zip(self.features, (float(v) for v in self._one(PREDICT, x)), strict=True))

    def learn_one(self, x: Mapping[str, Any], y: Any = None) -> None:
        """River's ``learn_one``: one SGD step (after the scalers' updates) or a mass update."""
        if self.supervised and y is None:
            raise ValueError(f"compiled model: a {self.kind} needs y to learn")
        self._one(LEARN, x, y if self.supervised else None)

    def _need(self, kind: str) -> None:
        if self.kind != kind:
            raise TypeError(f"compiled model: this is {_ARTICLE[self.kind]}, not "
                            f"{_ARTICLE[kind]}")

    # -- River objects --------------------------------------------------------------------------
    def to_river(self) -> Any:
        """The River object with this state (a new one each call): snapshots stay River's."""
        return convert.write(self._parts)

    def clone(self) -> CompiledModel:
        """A fresh model with the same parameters and no learned state (River's ``clone``)."""
        return compile_model(self._parts.template.clone(), self.features)

    def state_dict(self) -> dict[str, Any]:
        """The learned state as plain numbers, for tests and reports."""
        p = self._parts
        out: dict[str, Any] = {"stages": p.stages.copy()}
        if self.supervised:
            out.update(intercept=float(p.state[K.S_INTERCEPT]),
                       n_iterations=int(p.state[K.S_ITERATIONS]),
                       weights={f: float(p.weights[0, j])
                                for j, f in enumerate(self.features) if p.weights[1, j]})
        elif self.kind == "anomaly":
            out.update(mass=p.mass.copy(), counter=int(p.state[0]),
                       first_window=bool(p.state[1]))
        return out

