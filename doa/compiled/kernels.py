"""The Numba kernels of compiled River models: River's arithmetic, operation by operation.

A batch is a sequence of operations run in order, in one call: ``kinds[i]`` is
:data:`PREDICT` (write row ``i``'s prediction to ``out[i, :]`` from the current state) or
:data:`LEARN` (learn on row ``i``, and ``y[i]``). The state lives in NumPy arrays the kernels
update in place, so one batch or several give the same results, bit for bit.

Every formula is River's own, in River's order (see the comments), because floating-point
results depend on it: the scaler's running mean/variance updates, the dot product summed in
feature order, the loss gradient, the clip, the intercept step before the weight step, both
with the learning rates at the optimizer's iteration count before it is incremented.
``v ** 0.5`` is computed with the exponent read from the parameters at run time: LLVM
rewrites a constant ``pow(v, 0.5)`` into ``sqrt(v)``, which differs from the C library's
``pow`` (what CPython calls) in about 1 case in 1000. The scaler keeps it next to the
variance, so ``pow`` runs once per learned value, not on every transform.

Kernels are compiled with ``numba.njit(cache=True)`` through :func:`doa.kernels.jit_kernel`
(with its fallback when no cache directory is writable); ``fn.py_func`` is the pure-Python
twin. :func:`warm_up` compiles (or loads) them with the exact argument types used later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from doa.kernels.library import jit_kernel

__all__ = ["LEARN", "PREDICT", "check_batch", "run_hst", "run_linear", "warm_up"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

PREDICT = 0
LEARN = 1

# pipeline stages (transformers)
STANDARD = 0        # StandardScaler(with_std=True): rows = count, mean, var, var ** 0.5
CENTER = 1          # StandardScaler(with_std=False): rows = count, mean, (unused)
MINMAX = 2          # MinMaxScaler(): rows = min, max, (unused)
STAGE_ROWS = 4      # a stage's state: float64[4, d]

# the final step of a linear pipeline: params[P_MODEL]
TRANSFORMER = 0     # no final model: the output is the transformed row
REGRESSOR = 1       # LinearRegression: loss.mean_func(raw) (the identity)
CLASSIFIER = 2      # LogisticRegression: p(True) = sigmoid(raw)

# losses
SQUARED, ABSOLUTE, HUBER, QUANTILE, LOG, HINGE = 0, 1, 2, 3, 10, 11

# learning-rate schedulers
CONSTANT, INVERSE_SCALING, OPTIMAL = 0, 1, 2

# linear params: float64[P_SIZE]
(P_HALF, P_MODEL, P_LOSS, P_LOSS_A, P_LOSS_B, P_L2, P_CLIP, P_LR, P_LR_A, P_LR_B, P_ILR,
 P_ILR_A, P_ILR_B, P_INIT) = range(14)
P_SIZE = 14
# linear state: float64[2] = intercept, optimizer.n_iterations; weights: float64[2, d] =
# weight, present (1.0 once River's VectorDict holds the key)
S_INTERCEPT, S_ITERATIONS = 0, 1
# HalfSpaceTrees params: float64[5] = 0.5, height, window_size, size_limit, max_score;
# state: float64[2] = counter, first_window (1.0 / 0.0)
H_HALF, H_HEIGHT, H_WINDOW, H_SIZE_LIMIT, H_MAX_SCORE = range(5)


def _jit(fn: Callable[..., Any]) -> Any:
    """:func:`doa.kernels.jit_kernel`: ``njit(cache=True)``, with its no-cache fallback."""
    return jit_kernel(fn)


# -- pipeline stages ---------------------------------------------------------------------------
@_jit
def _stage_learn(kind: int, st: F64, a: F64, half: float) -> None:
    d = a.shape[0]
    if kind == MINMAX:
        for j in range(d):  # stats.Min / stats.Max: if x < min: min = x
            x = a[j]
            if x < st[0, j]:
                st[0, j] = x
            if x > st[1, j]:
                st[1, j] = x
        return
    for j in range(d):
        x = a[j]
        c = st[0, j] + 1.0                          # counts[i] += 1
        old = st[1, j]
        m = old + (x - old) / c                     # means[i] += (xi - old_mean) / counts[i]
        st[0, j] = c
        st[1, j] = m
        if kind == STANDARD:                        # vars_[i] += ((xi - old_mean) *
            v = st[2, j]                            #   (xi - means[i]) - vars_[i]) / counts[i]
            v = v + ((x - old) * (x - m) - v) / c
            st[2, j] = v
            st[3, j] = v ** half                    # the std, used until var changes


@_jit
def _stage_transform(kind: int, st: F64, a: F64) -> None:
    d = a.shape[0]
    for j in range(d):
        x = a[j]
        if kind == STANDARD:                        # (xi - means[i]) / v**0.5 if v else 0.0
            a[j] = (x - st[1, j]) / st[3, j] if st[2, j] != 0.0 else 0.0
        elif kind == CENTER:
            a[j] = x - st[1, j]
        else:
            lo = st[0, j]                           # (xi - lo) / d if d else 0.0
            gap = st[1, j] - lo
            a[j] = (x - lo) / gap if gap != 0.0 else 0.0


@_jit
def _stages(learn: bool, stage_kinds: I64, stages: F64, a: F64, half: float) -> None:
    """River's Pipeline: each transformer learns on its input, then transforms it."""
    for s in range(stage_kinds.shape[0]):
        if learn:
            _stage_learn(stage_kinds[s], stages[s], a, half)
        _stage_transform(stage_kinds[s], stages[s], a)


# -- linear models -----------------------------------------------------------------------------
@_jit
def _rate(kind: float, a: float, b: float, t: float) -> float:
    if kind == CONSTANT:
        return a
    if kind == INVERSE_SCALING:                     # lr / math.pow(t + 1, power)
        return a / math.pow(t + 1.0, b)
    return 1.0 / (a * (b + t))                      # Optimal: 1 / (alpha * (t0 + t))


@_jit
def _gradient(loss: float, pa: float, pb: float, y: float, p: float) -> float:
    if loss == SQUARED:
        return 2.0 * (p - y)
    if loss == ABSOLUTE:
        return 1.0 if p > y else -1.0
    if loss == HUBER:
        r = p - y
        if abs(r) <= pa:
            return r
        return pa if r > 0.0 else -pa
    if loss == QUANTILE:
        return (1.0 if y < p else 0.0) - pa
    if loss == LOG:
        weight = pa
        yt = 1.0
        if y == 0.0:
            yt = -1.0
            weight = pb
        z = p * yt
        if z > 18.0:
            return weight * math.exp(-z) * -yt
        if z < -18.0:
            return weight * -yt
        return weight * -yt / (math.exp(z) + 1.0)
    yt = y * 2.0 - 1.0                              # Hinge
    return -yt if yt * p <= pa else 0.0


@_jit
def _sigmoid(x: float) -> float:
    if x < -30.0:
        return 0.0
    if x > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


@_jit
def run_linear(kinds: I8, X: F64, y: F64, out: F64, stage_kinds: I64, stages: F64,
                weights: F64, state: F64, params: F64) -> None:
    d = X.shape[1]
    half = params[P_HALF]
    model = params[P_MODEL]
    a = np.empty(d)
    for i in range(kinds.shape[0]):
        for j in range(d):
            a[j] = X[i, j]
        learn = kinds[i] == LEARN
        _stages(learn, stage_kinds, stages, a, half)
        if model == TRANSFORMER:
            for j in range(d):
                out[i, j] = math.nan if learn else a[j]
            continue
        if not learn:
            dot = 0.0                               # VectorDict.dot(x): in x's order, a
            for j in range(d):                      # missing weight counts as 0.0 (0 * nan
                dot += weights[0, j] * a[j]         # is nan)
            raw = dot + state[S_INTERCEPT]
            out[i, 0] = _sigmoid(raw) if model == CLASSIFIER else raw
            continue
        out[i, 0] = math.nan
        # GLM.learn_one: weights masked to x, missing keys created by the initializer
        for j in range(d):
            if weights[1, j] == 0.0:
                weights[0, j] = params[P_INIT]
                weights[1, j] = 1.0
        dot = 0.0
        for j in range(d):
            dot += weights[0, j] * a[j]
        raw = dot + state[S_INTERCEPT]
        g = _gradient(params[P_LOSS], params[P_LOSS_A], params[P_LOSS_B], y[i], raw)
        clip = params[P_CLIP]                       # max(min(g, clip), -clip), Python's rules
        if clip < g:
            g = clip
        if -clip > g:
            g = -clip
        n = state[S_ITERATIONS]
        state[S_INTERCEPT] = state[S_INTERCEPT] - _rate(
            params[P_ILR], params[P_ILR_A], params[P_ILR_B], n) * g
        lr = _rate(params[P_LR], params[P_LR_A], params[P_LR_B], n)
        l2 = params[P_L2]
        for j in range(d):
            gj = a[j] * g                           # VectorDict.from_scaled(x, g)
            if l2 != 0.0:
                gj = gj + weights[0, j] * l2        # gradient.iadd_scaled(weights, l2)
            weights[0, j] = weights[0, j] - gj * lr  # SGD: w.isub_scaled(g, lr)
        state[S_ITERATIONS] = n + 1.0


# -- checking a batch before it runs ----------------------------------------------------------
@_jit
def check_batch(kinds: I8, X: F64, y: F64, target: int) -> int:
    """-1 if the batch can run, else ``3 * row + what``: 0 a bad kind, 1 a non-finite
    feature, 2 a bad target on a LEARN row (``target``: 0 none, 1 finite, 2 False/True)."""
    for i in range(kinds.shape[0]):
        k = kinds[i]
        if k != PREDICT and k != LEARN:
            return 3 * i
        for j in range(X.shape[1]):
            if not math.isfinite(X[i, j]):
                return 3 * i + 1
        if k == LEARN and target != 0:
            t = y[i]
            if not math.isfinite(t) or (target == 2 and t != 0.0 and t != 1.0):
                return 3 * i + 2
    return -1


# -- HalfSpaceTrees ----------------------------------------------------------------------------
@_jit
def _hst_next(node: int, feat: I64, thr: F64, lmass: F64, a: F64) -> int:
    left = 2 * node + 1
    f = feat[node]
    if f < 0:                                       # split feature not in x: busiest child
        return left + 1 if lmass[left] < lmass[left + 1] else left
    return left if a[f] < thr[node] else left + 1


@_jit
def run_hst(kinds: I8, X: F64, out: F64, stage_kinds: I64, stages: F64, feat: I64,
             thr: F64, mass: F64, state: F64, params: F64) -> None:
    # trees in heap order (node k's children: 2k + 1, 2k + 2); mass[t, 0] = l_mass,
    # mass[t, 1] = r_mass
    d = X.shape[1]
    half = params[H_HALF]
    height = int(params[H_HEIGHT])
    size_limit = params[H_SIZE_LIMIT]
    a = np.empty(d)
    for i in range(kinds.shape[0]):
        for j in range(d):
            a[j] = X[i, j]
        learn = kinds[i] == LEARN
        _stages(learn, stage_kinds, stages, a, half)
        if not learn:
            if state[1] != 0.0:                     # _first_window: score 0
                out[i, 0] = 0.0
                continue
            score = 0.0
            for t in range(feat.shape[0]):
                tree = 0.0                          # _walk_score: integer sums, exact
                node = 0
                depth_pow = 1.0
                stopped = False
                for _ in range(height):
                    r = mass[t, 1, node]
                    tree += r * depth_pow
                    if r < size_limit:
                        stopped = True
                        break
                    node = _hst_next(node, feat[t], thr[t], mass[t, 0], a)
                    depth_pow *= 2.0
                if not stopped:
                    tree += mass[t, 1, node] * depth_pow
                score += tree
            out[i, 0] = 1.0 - score / params[H_MAX_SCORE]
            continue
        out[i, 0] = math.nan
        for t in range(feat.shape[0]):              # _walk_learn
            node = 0
            for _ in range(height):
                mass[t, 0, node] += 1.0
                node = _hst_next(node, feat[t], thr[t], mass[t, 0], a)
            mass[t, 0, node] += 1.0
        state[0] += 1.0
        if state[0] == params[H_WINDOW]:            # the window is full: r_mass = l_mass
            for t in range(feat.shape[0]):
                for k in range(feat.shape[1]):
                    mass[t, 1, k] = mass[t, 0, k]
                    mass[t, 0, k] = 0.0
            state[1] = 0.0
            state[0] = 0.0


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) the kernels; return the seconds it took.

    Call it when a node starts, not on its first record. The arrays have the types and layouts
    :class:`doa.compiled.CompiledModel` passes, so no later call compiles again.
    ``bench/bench_compiled.py`` measures it with the cache empty and full.

    Examples
    --------
    >>> warm_up() >= 0.0
    True
    """
    start = time.perf_counter()
    kinds = np.array([LEARN, PREDICT], dtype=np.int8)
    X = np.zeros((2, 1))
    check_batch(kinds, X, np.zeros(2), 2)
    out = np.zeros((2, 1))
    stage_kinds = np.array([STANDARD], dtype=np.int64)
    stages = np.zeros((1, STAGE_ROWS, 1))
    params = np.zeros(P_SIZE)
    params[P_HALF] = 0.5
    params[P_MODEL] = REGRESSOR
    params[P_CLIP] = 1e12
    run_linear(kinds, X, np.zeros(2), out, stage_kinds, stages, np.zeros((2, 1)), np.zeros(2),
               params)
    hp = np.array([0.5, 1.0, 1.0, 0.1, 3.0])
    run_hst(kinds, X, out, stage_kinds, stages, np.zeros((1, 3), dtype=np.int64),
            np.full((1, 3), 0.5), np.zeros((1, 2, 3)), np.array([0.0, 1.0]), hp)
    return time.perf_counter() - start
