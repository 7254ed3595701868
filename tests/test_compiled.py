"""Compiled River models against River itself: predictions and learned state, event by event.

River is the reference: the same operations (predict on the current state, learn on a label)
go through the River object and through the compiled model in batches; after every batch the
predictions so far and every learned parameter (scaler counts/means/vars or min/max, weights,
intercept, optimizer iterations, tree masses) must equal River's to 1e-12 relative (they are
in fact equal to the last bit, which ``test_agrawal_is_bit_exact`` pins down).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import anomaly, compose, datasets, linear_model, optim, preprocessing, tree

from doa import compiled
from doa.compiled import LEARN, PREDICT

REL = 1e-12
Row = tuple[dict[str, float], Any]


# -- data ---------------------------------------------------------------------------------------
def phishing() -> list[Row]:
    return [({k: float(v) for k, v in x.items()}, bool(y)) for x, y in datasets.Phishing()]


def approval() -> list[Row]:
    return [({k: float(v) for k, v in x.items()}, float(y)) for x, y in datasets.TrumpApproval()]


def agrawal(n: int = 20_000) -> list[Row]:
    return [({k: float(v) for k, v in x.items()}, bool(y))
            for x, y in datasets.synth.Agrawal(seed=42).take(n)]


# -- the models ---------------------------------------------------------------------------------
CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "scaler|logreg": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    "logreg options": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.05), l2=0.01, intercept_lr=0.2, clip_gradient=0.3),
    "logreg hinge, schedulers": lambda: linear_model.LogisticRegression(
        optimizer=optim.SGD(optim.schedulers.InverseScaling(0.1, power=0.4)),
        intercept_lr=optim.schedulers.Optimal(optim.losses.Hinge()), loss=optim.losses.Hinge(),
        initializer=optim.initializers.Constant(-0.1), l2=0.001),
    "minmax|center|logreg weighted": lambda: (
        preprocessing.MinMaxScaler() | preprocessing.StandardScaler(with_std=False)
        | linear_model.LogisticRegression(loss=optim.losses.Log(weight_pos=2.0, weight_neg=0.5))),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "scaler|linreg": lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(
        intercept_lr=0.1),
    "linreg defaults": lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
    "linreg huber, l2, inverse scaling": lambda: (
        preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=optim.SGD(optim.schedulers.InverseScaling(0.05)), l2=0.01,
            loss=optim.losses.Huber(epsilon=0.5), initializer=optim.initializers.Constant(0.3))),
    "linreg absolute / quantile": lambda: (
        preprocessing.StandardScaler() | preprocessing.StandardScaler()
        | linear_model.LinearRegression(loss=optim.losses.Quantile(0.3), clip_gradient=0.5)),
}
DETECTORS: dict[str, Callable[[], Any]] = {
    "minmax|hst": lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
        n_trees=5, height=6, window_size=50, seed=42),
    "hst defaults": lambda: anomaly.HalfSpaceTrees(seed=7),
}
TRANSFORMERS: dict[str, Callable[[], Any]] = {
    "scaler": preprocessing.StandardScaler,
    "minmax|scaler": lambda: preprocessing.MinMaxScaler() | preprocessing.StandardScaler(),
}


def kind_of(model: Any) -> str:
    return compiled.compile_model(model, ["x"]).kind


# -- River as the reference ---------------------------------------------------------------------
def river_op(model: Any, kind: str, op: int, x: dict[str, float], y: Any) -> list[float]:
    """One operation on the River model: its output row (NaN for LEARN)."""
    if op == LEARN:
        model.learn_one(x) if kind in ("anomaly", "transformer") else model.learn_one(x, y)
        return [math.nan] * (len(x) if kind == "transformer" else 1)
    if kind == "classifier":
        return [float(model.predict_proba_one(x)[True])]
    if kind == "regressor":
        return [float(model.predict_one(x))]
    if kind == "anomaly":
        return [float(model.score_one(x))]
    return [float(v) for v in model.transform_one(x).values()]


def params_of(model: Any) -> dict[str, float]:
    """Every learned number of a River model, read from River's own attributes."""
    out: dict[str, float] = {}
    steps = model.steps.items() if isinstance(model, compose.Pipeline) else [("m", model)]
    for name, s in steps:
        if isinstance(s, preprocessing.StandardScaler):
            for f, c in s.counts.items():
                if c:
                    out |= {f"{name}.n.{f}": c, f"{name}.mean.{f}": s.means[f]}
                    if s.with_std:
                        out[f"{name}.var.{f}"] = s.vars[f]
        elif isinstance(s, preprocessing.MinMaxScaler):
            out |= {f"{name}.min.{f}": m.min for f, m in s.min.items() if m.min != math.inf}
            out |= {f"{name}.max.{f}": m.max for f, m in s.max.items() if m.max != -math.inf}
        elif isinstance(s, anomaly.HalfSpaceTrees):
            out |= {f"{name}.counter": s.counter, f"{name}.first": float(s._first_window)}
            for t, nodes in enumerate(s._tree_nodes):  # zero masses: as if no tree yet
                for k, node in enumerate(nodes):
                    out |= {f"{name}.{t}.{k}.{side}": m for side, m in
                            (("l", node.l_mass), ("r", node.r_mass)) if m}
        else:
            out |= {f"{name}.w.{f}": w for f, w in s.weights.items()}
            out |= {f"{name}.b": s.intercept, f"{name}.t": s.optimizer.n_iterations}
    return out


def close(got: Any, want: Any) -> float:
    """Max relative error of ``got`` vs ``want`` (NaN only where River has NaN)."""
    g, w = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert g.shape == w.shape
    assert np.array_equal(np.isnan(g), np.isnan(w)), "NaN where River has none, or vice versa"
    g, w = g[~np.isnan(w)], w[~np.isnan(w)]
    scale = np.maximum(np.abs(w), np.finfo(float).tiny)
    rel = np.where(g == w, 0.0, np.abs(g - w) / scale)
    worst = float(rel.max()) if rel.size else 0.0
    assert worst <= REL, f"relative error {worst:g} > {REL:g}"
    return worst


def close_params(got: dict[str, float], want: dict[str, float]) -> float:
    assert got.keys() == want.keys()
    return close([got[k] for k in want], [want[k] for k in want])


def prequential(data: list[Row]) -> tuple[np.ndarray, list[dict[str, float]], list[Any]]:
    """Predict then learn on each event: ops P, L, P, L, ..."""
    kinds = np.tile(np.array([PREDICT, LEARN], dtype=np.int8), len(data))
    rows = [x for x, _ in data for _ in (0, 1)]
    ys = [y for _, y in data for _ in (0, 1)]
    return kinds, rows, ys


def check_against_river(make: Callable[[], Any], kinds: np.ndarray, rows: list[dict[str, float]],
                        ys: list[Any], batch: int, params_every: int = 1
                        ) -> tuple[np.ndarray, compiled.CompiledModel]:
    """Run both; after every batch compare the predictions so far and all parameters (every
    ``params_every`` batches and after the last: a River copy of 5000 tree nodes is slow)."""
    reference = make()
    kind = kind_of(make())
    cm = compiled.compile_model(make(), list(rows[0]))
    X = cm.rows(rows)
    y = np.array([float(v) for v in ys]) if cm.supervised else None
    out = np.full((len(kinds), cm.n_outputs), np.nan)
    want = np.full_like(out, np.nan)
    for a in range(0, len(kinds), batch):
        b = min(a + batch, len(kinds))
        out[a:b] = cm.run_ops(kinds[a:b], X[a:b], None if y is None else y[a:b])
        for i in range(a, b):
            want[i] = river_op(reference, kind, int(kinds[i]), rows[i], ys[i])
        close(out[:b], want[:b])
        if (a // batch) % params_every == 0 or b == len(kinds):
            close_params(params_of(cm.to_river()), params_of(reference))
    return out, cm


# -- equality on River's datasets ---------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_equal_river_on_phishing(name: str) -> None:
    kinds, rows, ys = prequential(phishing())
    outs = [check_against_river(CLASSIFIERS[name], kinds, rows, ys, b)[0] for b in (1, 64, 512)]
    assert all(np.array_equal(outs[0], o, equal_nan=True) for o in outs[1:])


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressors_equal_river_on_trump_approval(name: str) -> None:
    kinds, rows, ys = prequential(approval())
    outs = [check_against_river(REGRESSORS[name], kinds, rows, ys, b)[0] for b in (1, 64, 512)]
    assert all(np.array_equal(outs[0], o, equal_nan=True) for o in outs[1:])


@pytest.mark.parametrize("name", DETECTORS)
def test_half_space_trees_equal_river(name: str) -> None:
    kinds, rows, ys = prequential(phishing()[:600])
    outs = [check_against_river(DETECTORS[name], kinds, rows, ys, b, 1 if b > 1 else 50)[0]
            for b in (1, 64, 512)]
    assert all(np.array_equal(outs[0], o, equal_nan=True) for o in outs[1:])
    assert len(set(outs[0][::2, 0].tolist())) > 10, "the scores should vary"


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_transformers_equal_river(name: str) -> None:
    kinds, rows, ys = prequential(approval()[:300])
    check_against_river(TRANSFORMERS[name], kinds, rows, ys, 64)


def test_agrawal_is_bit_exact() -> None:
    # The measurement: 20k events of synth.Agrawal(seed=42), batches of 512.
    data = agrawal()
    make = CLASSIFIERS["scaler|logreg"]
    reference = make()
    cm = compiled.compile_model(make(), list(data[0][0]))
    kinds, rows, ys = prequential(data)
    X, y = cm.rows(rows), np.array(ys, dtype=float)
    out = np.concatenate([cm.run_ops(kinds[a:a + 512], X[a:a + 512], y[a:a + 512])
                          for a in range(0, len(kinds), 512)])
    want = []
    for x, label in data:
        want.append(reference.predict_proba_one(x)[True])
        reference.learn_one(x, label)
    assert out[::2, 0].tolist() == want
    assert params_of(cm.to_river()) == params_of(reference)


# -- Hypothesis streams -------------------------------------------------------------------------
FEATURES = ["a", "b", "c"]
finite = st.floats(min_value=-1e150, max_value=1e150, allow_nan=False, allow_infinity=False)
column = st.one_of(
    st.tuples(st.just("free"), finite),
    st.tuples(st.just("constant"), finite),                      # zero variance
    st.tuples(st.just("small"), st.floats(min_value=-3, max_value=3)),
    st.tuples(st.just("extreme"), st.sampled_from([1e300, -1e300, 1e-300, 5e-324, 0.0])),
)


@st.composite
def streams(draw: Any, classifier: bool) -> tuple[list[dict[str, float]], list[Any], np.ndarray]:
    modes = draw(st.lists(column, min_size=len(FEATURES), max_size=len(FEATURES)))
    n = draw(st.integers(min_value=1, max_value=40))
    rows = []
    for _ in range(n):
        row = {}
        for f, (mode, value) in zip(FEATURES, modes, strict=True):
            if mode == "free":
                row[f] = draw(finite)
            elif mode == "small":
                row[f] = draw(st.floats(min_value=-3, max_value=3))
            else:
                row[f] = value
        rows.append(row)
    label = st.booleans() if classifier else st.floats(min_value=-1e6, max_value=1e6)
    ys = [draw(label) for _ in range(n)]
    kinds = np.array(draw(st.lists(st.sampled_from([PREDICT, LEARN]), min_size=n, max_size=n)),
                     dtype=np.int8)
    return rows, ys, kinds


HYPOTHESIS = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@HYPOTHESIS
@given(streams(classifier=True), st.sampled_from(sorted(CLASSIFIERS)), st.integers(1, 7))
def test_hypothesis_classifiers(stream: Any, name: str, batch: int) -> None:
    rows, ys, kinds = stream
    check_against_river(CLASSIFIERS[name], kinds, rows, ys, batch)


@HYPOTHESIS
@given(streams(classifier=False), st.sampled_from(sorted(REGRESSORS)), st.integers(1, 7))
def test_hypothesis_regressors(stream: Any, name: str, batch: int) -> None:
    rows, ys, kinds = stream
    check_against_river(REGRESSORS[name], kinds, rows, ys, batch)


@HYPOTHESIS
@given(streams(classifier=False), st.integers(1, 7))
def test_hypothesis_detectors_and_transformers(stream: Any, batch: int) -> None:
    rows, ys, kinds = stream
    for make in (lambda: anomaly.HalfSpaceTrees(n_trees=3, height=3, window_size=4, seed=1),
                 preprocessing.StandardScaler, preprocessing.MinMaxScaler):
        check_against_river(make, kinds, rows, ys, batch)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_features_are_rejected_before_anything_runs(bad: float) -> None:
    cm = compiled.compile_model(CLASSIFIERS["scaler|logreg"](), FEATURES)
    X = np.ones((3, 3))
    cm.run_ops(np.array([LEARN], dtype=np.int8), X[:1], np.array([1.0]))
    before = params_of(cm.to_river())
    X[2, 1] = bad
    with pytest.raises(ValueError, match=r"feature 'b' of row 2 is (nan|inf|-inf).*nothing was"):
        cm.run_ops(np.array([LEARN, LEARN, PREDICT], dtype=np.int8), X, np.ones(3))
    assert params_of(cm.to_river()) == before
    with pytest.raises(ValueError, match="feature 'a' of row 0"):
        cm.learn_one({"a": bad, "b": 1.0, "c": 1.0}, True)


def test_bad_targets_are_rejected() -> None:
    cm = compiled.compile_model(CLASSIFIERS["scaler|logreg"](), FEATURES)
    learn = np.array([PREDICT, LEARN], dtype=np.int8)
    with pytest.raises(ValueError, match=r"y of LEARN row 1 is 2\.0.*False/True"):
        cm.run_ops(learn, np.ones((2, 3)), np.array([5.0, 2.0]))
    with pytest.raises(ValueError, match="needs y"):
        cm.run_ops(learn, np.ones((2, 3)))
    reg = compiled.compile_model(REGRESSORS["scaler|linreg"](), FEATURES)
    with pytest.raises(ValueError, match="y of LEARN row 1 is nan"):
        reg.run_ops(learn, np.ones((2, 3)), np.array([1.0, math.nan]))
    out = reg.run_ops(np.array([PREDICT], dtype=np.int8), np.ones((1, 3)), np.array([math.nan]))
    assert out[0, 0] == 0.0  # y is ignored on PREDICT rows
    with pytest.raises(ValueError, match="shape"):
        reg.run_ops(learn, np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="feature 'c' is missing"):
        reg.predict_one({"a": 1.0, "b": 2.0})


# -- conversion both ways -----------------------------------------------------------------------
ALL = {**CLASSIFIERS, **REGRESSORS, **DETECTORS, **TRANSFORMERS}


@pytest.mark.parametrize("name", ALL)
def test_round_trip_trained_model(name: str) -> None:
    """River (trained) -> compiled -> learn more -> River: continues exactly like River."""
    make = ALL[name]
    data = approval() if name in REGRESSORS else phishing()
    data = data[:700]
    kind = kind_of(make())
    reference = make()
    kinds, rows, ys = prequential(data)
    for i in range(600):
        river_op(reference, kind, int(kinds[i]), rows[i], ys[i])
    cm = compiled.compile_model(pickle.loads(pickle.dumps(reference)), list(rows[0]))
    assert params_of(cm.to_river()) == params_of(reference)       # same state
    back_fresh = cm.to_river()
    X = cm.rows(rows[600:1000])
    y = np.array(ys[600:1000], dtype=float) if cm.supervised else None
    out = cm.run_ops(kinds[600:1000], X, y)
    want = [river_op(reference, kind, int(kinds[i]), rows[i], ys[i]) for i in range(600, 1000)]
    fresh = [river_op(back_fresh, kind, int(kinds[i]), rows[i], ys[i]) for i in range(600, 1000)]
    close(out, np.array(want, dtype=float))
    assert np.array_equal(np.array(fresh, dtype=float), np.array(want, dtype=float),
                          equal_nan=True), "River -> compiled -> River must predict the same"
    back = pickle.loads(pickle.dumps(cm)).to_river()
    assert params_of(back) == params_of(reference)
    for i in range(1000, len(rows)):  # the converted River object goes on like the original
        assert river_op(back, kind, int(kinds[i]), rows[i], ys[i]) == pytest.approx(
            river_op(reference, kind, int(kinds[i]), rows[i], ys[i]), rel=0, abs=0, nan_ok=True)


def test_conversion_keeps_features_it_does_not_compile() -> None:
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    model.learn_one({"a": 1.0, "extra": 5.0, "b": 2.0}, 1.0)
    model.learn_one({"a": 2.0, "extra": 7.0, "b": 0.0}, 3.0)
    cm = compiled.compile_model(model, ["a", "b"])
    cm.learn_one({"a": 4.0, "b": 1.0}, 2.0)
    model.learn_one({"a": 4.0, "b": 1.0}, 2.0)
    assert params_of(cm.to_river()) == params_of(model)
    assert cm.predict_one({"a": 0.5, "b": 0.5}) == model.predict_one({"a": 0.5, "b": 0.5})


def test_fresh_half_space_trees_round_trip_predicts_the_same() -> None:
    original = anomaly.HalfSpaceTrees(n_trees=4, height=4, window_size=20, seed=3)
    back = compiled.compile_model(original, FEATURES).to_river()
    rnd = np.random.default_rng(0)
    for _ in range(100):
        x = dict(zip(FEATURES, rnd.random(3).tolist(), strict=True))
        assert back.score_one(x) == original.score_one(x)
        back.learn_one(x)
        original.learn_one(x)
    assert params_of(back) == params_of(original)


def test_dict_conveniences_and_pickle() -> None:
    make = CLASSIFIERS["scaler|logreg"]
    reference, cm = make(), compiled.compile_model(make(), ["a", "b"])
    rnd = np.random.default_rng(1)
    for i in range(200):
        x = {"a": float(rnd.normal()), "b": float(rnd.normal(5, 2))}
        assert cm.predict_proba_one(x) == reference.predict_proba_one(x)
        assert cm.predict_one(x) == reference.predict_one(x)
        y = bool(x["a"] + rnd.normal() > 0)
        cm.learn_one(x, y)
        reference.learn_one(x, y)
        if i == 100:
            cm = pickle.loads(pickle.dumps(cm))
    assert cm.clone().state_dict()["weights"] == {}
    assert "classifier" in repr(cm)
    with pytest.raises(TypeError, match="classifier, not an anomaly detector"):
        cm.score_one({"a": 1.0, "b": 1.0})


def test_warm_up_compiled_every_specialization_used() -> None:
    # Everything above ran after (or without) warm_up: no call compiled a second version,
    # not even with read-only or Fortran-ordered inputs.
    cm = compiled.compile_model(REGRESSORS["scaler|linreg"](), FEATURES)
    X = np.asfortranarray(np.ones((4, 3)))
    X.flags.writeable = False
    cm.run_ops(np.array([LEARN, PREDICT] * 2, dtype=np.int8), X, np.arange(4.0))
    assert compiled.warm_up() < 5.0
    for fn in (compiled.kernels.run_linear, compiled.kernels.run_hst,
               compiled.kernels.check_batch):
        assert len(fn.signatures) == 1, fn.signatures


def test_python_twin_equals_the_kernel() -> None:
    for make in (CLASSIFIERS["logreg options"], DETECTORS["minmax|hst"]):
        kinds, rows, ys = prequential(phishing()[:80])
        a, b = compiled.compile_model(make(), list(rows[0])), compiled.compile_model(
            make(), list(rows[0]))
        X, y = a.rows(rows), np.array(ys, dtype=float)
        assert np.array_equal(a.run_ops(kinds, X, y), b.run_ops(kinds, X, y, python=True),
                              equal_nan=True)


@pytest.mark.parametrize(("model", "reason"), [
    (tree.HoeffdingTreeClassifier(), "HoeffdingTreeClassifier is not supported"),
    (linear_model.LogisticRegression(l1=0.1), "l1 is not supported"),
    (linear_model.LinearRegression(optimizer=optim.Adam()), "optimizer Adam"),
    (linear_model.LinearRegression(loss=optim.losses.Cauchy()), "loss Cauchy"),
    (preprocessing.StandardScaler(window_size=5) | linear_model.LinearRegression(),
     "window_size=5"),
    (preprocessing.Normalizer() | linear_model.LinearRegression(), "Normalizer is not a"),
])
def test_unsupported_models_say_why(model: Any, reason: str) -> None:
    assert not compiled.supports(model)
    assert reason in str(compiled.why_not(model))
    with pytest.raises(compiled.UnsupportedModel, match=reason):
        compiled.compile_model(model, ["x"])


def test_half_space_trees_split_on_a_feature_the_compiled_model_lacks() -> None:
    # Trees grown on a, b, c; compiled with a, b only: a split on c takes River's
    # missing-feature path (the child with more mass).
    rnd = np.random.default_rng(2)
    reference = anomaly.HalfSpaceTrees(n_trees=3, height=5, window_size=30, seed=5)
    for _ in range(90):
        reference.learn_one(dict(zip(FEATURES, rnd.random(3).tolist(), strict=True)))
    cm = compiled.compile_model(reference, ["a", "b"])
    for _ in range(200):
        x = {"a": float(rnd.random()), "b": float(rnd.random())}
        assert cm.score_one(x) == reference.score_one(x)
        cm.learn_one(x)
        reference.learn_one(x)
    assert params_of(cm.to_river()) == params_of(reference)
