"""River objects to kernel arrays and back: which models are supported, and their state.

:func:`read` takes a supported River model (fresh or trained) and the feature order, and
returns :class:`Parts`: the kernels' parameter and state arrays, plus a deep copy of the River
object (the *template*). :func:`write` returns a deep copy of the template with the arrays'
state written into it. Everything the kernels do not touch (e.g. statistics of features
outside ``features``) stays in the template as it was, exactly as River would leave it for
features the stream never carries.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from doa.compiled import kernels as K
from doa.compiled.support import UnsupportedModel, steps_of, why_not

__all__ = ["Parts", "read", "write"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Parts:
    """What a :class:`doa.compiled.CompiledModel` runs: parameters, state, the template."""

    kind: str                       # "classifier", "regressor", "anomaly" or "transformer"
    features: tuple[str, ...]
    template: Any                   # a deep copy of the River object
    stage_kinds: I64
    stages: F64                     # [stage, kernels.STAGE_ROWS, feature]
    params: F64                     # kernels.P_* (linear) or kernels.H_* (HalfSpaceTrees)
    state: F64                      # intercept, n_iterations | counter, first_window
    weights: F64 = field(default_factory=lambda: np.zeros((2, 0)))
    feat: I64 = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))
    thr: F64 = field(default_factory=lambda: np.zeros((0, 1)))
    mass: F64 = field(default_factory=lambda: np.zeros((0, 2, 1)))


# -- River -> arrays ---------------------------------------------------------------------------
def _read_stage(step: Any, features: Sequence[str]) -> tuple[int, F64]:
    from river import preprocessing

    st = np.zeros((K.STAGE_ROWS, len(features)))
    if type(step) is preprocessing.MinMaxScaler:
        for j, f in enumerate(features):
            st[0, j] = step.min[f].min if f in step.min else math.inf
            st[1, j] = step.max[f].max if f in step.max else -math.inf
        return K.MINMAX, st
    for j, f in enumerate(features):
        st[0, j] = step.counts.get(f, 0)
        st[1, j] = step.means.get(f, 0.0)
        st[2, j] = step.vars.get(f, 0.0) if step.with_std else 0.0
        st[3, j] = st[2, j] ** 0.5  # C's pow, like the kernel's (not sqrt: they can differ)
    return (K.STANDARD if step.with_std else K.CENTER), st


def _schedule(s: Any) -> tuple[int, float, float]:
    from river.optim import schedulers

    if type(s) is schedulers.Constant:
        return K.CONSTANT, float(s.learning_rate), 0.0
    if type(s) is schedulers.InverseScaling:
        return K.INVERSE_SCALING, float(s.learning_rate), float(s.power)
    return K.OPTIMAL, float(s.alpha), float(s.t0)


def _loss(loss: Any) -> tuple[int, float, float]:
    from river.optim import losses

    codes: dict[type, tuple[int, float, float]] = {
        losses.Squared: (K.SQUARED, 0.0, 0.0), losses.Absolute: (K.ABSOLUTE, 0.0, 0.0),
        losses.Huber: (K.HUBER, float(getattr(loss, "epsilon", 0.0)), 0.0),
        losses.Quantile: (K.QUANTILE, float(getattr(loss, "alpha", 0.0)), 0.0),
        losses.Log: (K.LOG, float(getattr(loss, "weight_pos", 0.0)),
                     float(getattr(loss, "weight_neg", 0.0))),
        losses.Hinge: (K.HINGE, float(getattr(loss, "threshold", 0.0)), 0.0)}
    return codes[type(loss)]


def _read_linear(step: Any, features: Sequence[str], classifier: bool
                 ) -> tuple[F64, F64, F64]:
    params = np.zeros(K.P_SIZE)
    params[K.P_HALF] = 0.5
    params[K.P_MODEL] = K.CLASSIFIER if classifier else K.REGRESSOR
    params[K.P_LOSS], params[K.P_LOSS_A], params[K.P_LOSS_B] = _loss(step.loss)
    params[K.P_L2] = float(step.l2)
    params[K.P_CLIP] = float(step.clip_gradient)
    params[K.P_LR], params[K.P_LR_A], params[K.P_LR_B] = _schedule(step.optimizer.lr)
    params[K.P_ILR], params[K.P_ILR_A], params[K.P_ILR_B] = _schedule(step.intercept_lr)
    params[K.P_INIT] = float(step.initializer.value)
    weights = np.zeros((2, len(features)))
    known = step._weights.to_dict()
    for j, f in enumerate(features):
        if f in known:
            weights[0, j] = float(known[f])
            weights[1, j] = 1.0
    state = np.array([float(step.intercept), float(step.optimizer.n_iterations)])
    return params, state, weights


def _heap(root: Any, height: int) -> list[Any]:
    """A tree's nodes in heap order; it must be complete with the given height."""
    nodes = [root]
    for k in range((1 << height) - 1):
        children = getattr(nodes[k], "children", None)
        if not children or len(children) != 2:
            raise UnsupportedModel("HalfSpaceTrees: a tree is not complete")
        nodes.extend(children)
    return nodes


def _build_trees(hst: Any, features: Sequence[str]) -> None:
    """What HalfSpaceTrees.learn_one does on its first call (same rng draws, same limits)."""
    from river.tree import padded

    make_padded_tree: Any = padded.make_padded_tree
    hst.trees = [make_padded_tree(limits={i: hst.limits[i] for i in sorted(features)},
                                  height=hst.height, padding=0.15, rng=hst.rng, r_mass=0,
                                  l_mass=0)
                 for _ in range(hst.n_trees)]
    hst._tree_nodes = [list(t.iter_dfs()) for t in hst.trees]


def _read_hst(hst: Any, features: Sequence[str]) -> tuple[F64, F64, I64, F64, F64]:
    if not hst.trees:
        _build_trees(hst, features)  # on the template: its rng moves as River's would
    height, index = int(hst.height), {f: j for j, f in enumerate(features)}
    n = (1 << (height + 1)) - 1
    feat = np.full((len(hst.trees), n), -1, dtype=np.int64)
    thr = np.zeros((len(hst.trees), n))
    mass = np.zeros((len(hst.trees), 2, n))
    for t, root in enumerate(hst.trees):
        for k, node in enumerate(_heap(root, height)):
            if k < (1 << height) - 1:
                feat[t, k] = index.get(node.feature, -1)
                thr[t, k] = float(node.threshold)
            mass[t, 0, k] = node.l_mass
            mass[t, 1, k] = node.r_mass
    params = np.array([0.5, float(height), float(hst.window_size), 0.1 * hst.window_size,
                       float(hst._max_score)])
    state = np.array([float(hst.counter), 1.0 if hst._first_window else 0.0])
    return params, state, feat, thr, mass


def read(model: Any, features: Sequence[str]) -> Parts:
    """The kernels' arrays for a supported River model, features in the given order."""
    from river import anomaly, linear_model

    reason = why_not(model)
    if reason is not None:
        raise UnsupportedModel(f"cannot compile {type(model).__name__}: {reason}")
    features = tuple(features)
    if not features or len(set(features)) != len(features):
        raise ValueError(f"features must be distinct names, at least one: {features}")
    template = copy.deepcopy(model)
    *stages, last = steps_of(template)
    d = len(features)
    if type(last) in (linear_model.LinearRegression, linear_model.LogisticRegression,
                      anomaly.HalfSpaceTrees):
        final = last
    else:
        stages, final = [*stages, last], None
    read_stages = [_read_stage(s, features) for s in stages]
    stage_kinds = np.array([k for k, _ in read_stages], dtype=np.int64)
    stage_arr = (np.stack([st for _, st in read_stages]) if read_stages
                 else np.zeros((0, K.STAGE_ROWS, d)))
    if type(final) is anomaly.HalfSpaceTrees:
        params, state, feat, thr, mass = _read_hst(final, features)
        return Parts("anomaly", features, template, stage_kinds, stage_arr, params, state,
                     feat=feat, thr=thr, mass=mass)
    if final is None:
        params = np.zeros(K.P_SIZE)
        params[K.P_HALF] = 0.5
        params[K.P_MODEL] = K.TRANSFORMER
        return Parts("transformer", features, template, stage_kinds, stage_arr, params,
                     np.zeros(2), weights=np.zeros((2, d)))
    classifier = type(final) is linear_model.LogisticRegression
    params, state, weights = _read_linear(final, features, classifier)
    return Parts("classifier" if classifier else "regressor", features, template,
                 stage_kinds, stage_arr, params, state, weights=weights)


# -- arrays -> River ---------------------------------------------------------------------------
def _write_stage(step: Any, kind: int, st: F64, features: Sequence[str]) -> None:
    if kind == K.MINMAX:
        for j, f in enumerate(features):
            if f in step.min or st[0, j] != math.inf:
                step.min[f].min = float(st[0, j])
            if f in step.max or st[1, j] != -math.inf:
                step.max[f].max = float(st[1, j])
        return
    for j, f in enumerate(features):
        count = int(st[0, j])
        if count == 0 and f not in step.counts:
            continue
        step.counts[f] = count
        step.means[f] = float(st[1, j])
        if kind == K.STANDARD:
            step.vars[f] = float(st[2, j])


def write(parts: Parts) -> Any:
    """A River object with the state of ``parts`` (a fresh deep copy each call)."""
    model = copy.deepcopy(parts.template)
    *steps, last = steps_of(model)
    if parts.kind == "transformer":
        steps.append(last)
    for step, kind, st in zip(steps, parts.stage_kinds, parts.stages, strict=True):
        _write_stage(step, int(kind), st, parts.features)
    if parts.kind in ("classifier", "regressor"):
        last.intercept = float(parts.state[K.S_INTERCEPT])
        last.optimizer.n_iterations = int(parts.state[K.S_ITERATIONS])
        for j, f in enumerate(parts.features):
            if parts.weights[1, j] != 0.0:
                last._weights[f] = float(parts.weights[0, j])
    elif parts.kind == "anomaly":
        for t, root in enumerate(last.trees):
            for k, node in enumerate(_heap(root, int(last.height))):
                node.l_mass = int(parts.mass[t, 0, k])
                node.r_mass = int(parts.mass[t, 1, k])
        last.counter = int(parts.state[0])
        last._first_window = bool(parts.state[1] != 0.0)
    return model
