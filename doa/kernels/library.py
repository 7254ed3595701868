"""The kernel contract, the library's kernels and their warm-up.

Every kernel has one signature::

    fn(slots: int64[:], times_ms: int64[:], values: float64[:],
       state: float64[:, :], params: float64[:], out: float64[:, :]) -> None

It processes the batch's events ``i = 0 .. len(slots) - 1`` in order: event ``i`` belongs to
the key whose state row is ``state[slots[i], :]`` (rows of unseen keys are all zeros), happened
at ``times_ms[i]`` and carries ``values[i]``; the kernel updates that row and writes the event's
outputs to ``out[i, :]``. Processing a sequence in one batch or in several gives the same
outputs and state, bit for bit. Kernels are compiled with ``numba.njit(cache=True)``; the
pure-Python original stays available as ``fn.py_func`` and computes the same thing.

Missing values
--------------
A value that is NaN or ±inf (valid Avro for a ``double``: a sensor's failed reading) is
*missing*: the library's kernels leave the key's state exactly as it was, as if the event had
not arrived, so one bad reading cannot poison a key's state (it would otherwise stay NaN for
good, snapshots included), and the event's outputs are the key's statistics without it. This
is pandas' rule for its window functions (``Series.ewm(...)``, ``rolling``, ``expanding``
skip NaN observations and take ±inf as NaN); each kernel's docstring says what exactly its
outputs are, and ``tests/test_kernels_missing.py`` checks them against pandas.

Examples
--------
>>> k = ewm(0.5)
>>> state = k.new_state(2)                               # two keys, no events yet
>>> k.run([0, 0, 1, 0], [0, 1, 1, 2], [1.0, 3.0, 7.0, 5.0], state)
array([[1.  , 0.  , 0.  ],
       [2.  , 1.  , 0.  ],
       [7.  , 0.  , 0.  ],
       [3.5 , 2.75, 3.  ]])
>>> k.outputs
('mean', 'var', 'zscore')
>>> k.run([0, 0, 0], [0, 1, 2], [float("nan"), 2.0, float("inf")])  # missing values
array([[nan, nan,  0.],
       [ 2.,  0.,  0.],
       [ 2.,  0.,  0.]])
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from doa.kernels.loops import (
    ewm_loop,
    rate_loop,
    since_previous_loop,
    sliding_loop,
    tumbling_loop,
)

__all__ = ["Kernel", "ewm", "jit_kernel", "rate", "since_previous", "sliding", "tumbling",
           "warm_up"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

def jit_kernel(fn: Callable[..., None]) -> Any:
    """Compile ``fn`` lazily with ``numba.njit(cache=True)``, as the library's kernels are.

    Compilation happens on the first call (or in :func:`warm_up`). The compiled code is cached
    on disk next to the source (``__pycache__``), or, if that directory is not writable, in
    numba's user-wide cache (``~/.cache/numba``); set ``NUMBA_CACHE_DIR`` to a writable
    directory to choose the place (read-only images: point it at a volume). If no location is
    writable, numba cannot cache at all: this warns and compiles in memory at every start
    (silently for a function without a source file, e.g. typed at a prompt).

    Examples
    --------
    >>> @jit_kernel
    ... def last(slots, times_ms, values, state, params, out):
    ...     for i in range(slots.shape[0]):
    ...         out[i, 0] = state[slots[i], 0]   # the key's previous value (0.0 at first)
    ...         state[slots[i], 0] = values[i]
    >>> Kernel("last", last, state_width=1, outputs=("value",)).run([0, 0], [0, 1], [4.0, 5.0])
    array([[0.],
           [4.]])
    """
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        source = getattr(getattr(fn, "__code__", None), "co_filename", "<unknown>")
        if os.path.exists(source):
            warnings.warn(f"numba cannot cache kernel {fn.__name__!r} ({exc}); it will be "
                          "compiled at every start. Set NUMBA_CACHE_DIR to a writable "
                          "directory.",
                          RuntimeWarning, stacklevel=2)
        return numba.njit(cache=False)(fn)


@dataclass(frozen=True)
class Kernel:
    """A kernel function plus what a node needs to run it.

    Parameters
    ----------
    name : a label (``"ewm"``, ``"sliding"``, ...), for reports
    fn : the kernel, with the module's signature; jitted (see :func:`jit_kernel`) or plain
    state_width : columns of a key's state row (rows start as zeros)
    outputs : names of the columns of ``out``
    params : the kernel's parameters, passed as a float64 array
    integer_outputs : outputs emitted as ``int`` (Avro ``long``) rather than ``float``
    """

    name: str
    fn: Any
    state_width: int
    outputs: tuple[str, ...]
    params: tuple[float, ...] = ()
    integer_outputs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.state_width < 0 or not self.outputs:
            raise ValueError(f"kernel {self.name!r}: needs state_width >= 0 and an output")
        if not self.integer_outputs <= set(self.outputs):
            raise ValueError(f"kernel {self.name!r}: integer_outputs must be among outputs")

    @property
    def py_func(self) -> Callable[..., None]:
        """The pure-Python function (``fn`` itself if it is not jitted)."""
        return getattr(self.fn, "py_func", self.fn)  # type: ignore[no-any-return]

    def param_array(self) -> F64:
        return np.asarray(self.params, dtype=np.float64).reshape(-1)

    def new_state(self, keys: int = 1) -> F64:
        """The state of ``keys`` keys that have seen no event."""
        return np.zeros((keys, self.state_width), dtype=np.float64)

    def run(self, slots: Sequence[int] | I64, times_ms: Sequence[int] | I64,
            values: Sequence[float] | F64, state: F64 | None = None, *,
            python: bool = False) -> F64:
        """Run on one batch and return ``out``; ``state`` is updated in place.

        ``python=True`` runs :attr:`py_func` instead of the compiled function.
        """
        s = np.ascontiguousarray(slots, dtype=np.int64)
        if state is None:
            state = self.new_state(int(s.max()) + 1 if len(s) else 1)
        out = np.full((len(s), len(self.outputs)), np.nan)
        fn = self.py_func if python else self.fn
        fn(s, np.ascontiguousarray(times_ms, dtype=np.int64),
           np.ascontiguousarray(values, dtype=np.float64), state, self.param_array(), out)
        return out


def warm_up(kernels: Iterable[Kernel]) -> float:
    """Compile (or load from numba's cache) every kernel; return the seconds it took.

    Call it when a node starts, not on its first record: compiling the five library kernels
    takes about 2 s with numba's on-disk cache empty and about 0.3 s loading them from it
    (``bench/bench_kernels.py`` measures both), plus about 0.4 s to import numba. The arrays
    have exactly the types and layouts the node passes later, so no call recompiles.

    Examples
    --------
    >>> warm_up([ewm(0.1), since_previous()]) >= 0.0
    True
    """
    start = time.perf_counter()
    for k in kernels:
        one = np.zeros(1, dtype=np.int64)
        k.fn(one, one.copy(), np.zeros(1), k.new_state(1), k.param_array(),
             np.zeros((1, len(k.outputs))))
    return time.perf_counter() - start


# -- the library ------------------------------------------------------------------------------
ewm_fn = jit_kernel(ewm_loop)
tumbling_fn = jit_kernel(tumbling_loop)
sliding_fn = jit_kernel(sliding_loop)
rate_fn = jit_kernel(rate_loop)
since_previous_fn = jit_kernel(since_previous_loop)

WINDOW_OUTPUTS = ("count", "sum", "mean", "min", "max")


def ewm(alpha: float) -> Kernel:
    """Exponentially weighted mean and variance of the key's values, and the new value's z-score.

    After each event, ``mean`` and ``var`` equal ``river.stats.EWMean(fading_factor=alpha)``
    and ``river.stats.EWVar(fading_factor=alpha)`` updated with the key's values so far:
    the first value starts ``mean = x`` and ``E[x²] = x²``, then
    ``mean = alpha·x + (1 - alpha)·mean``, the same for ``E[x²]``, and
    ``var = E[x²] - mean²`` (River's formula: it may be a tiny negative number for constant
    values). ``zscore = (x - mean) / sqrt(var)`` with mean and var as they were *before* the
    update, 0.0 for the key's first event and when that var is not above ``1e-14 · E[x²]``
    (rounding noise of the formula, e.g. a constant so far).

    A missing value (NaN, ±inf) leaves the state as it was; its event's ``mean`` and ``var``
    are the key's so far (NaN while the key has no value yet) and its ``zscore`` is 0.0 (no
    deviation to measure, as for a first value): pandas'
    ``s.ewm(alpha=alpha, adjust=False, ignore_na=True)`` ``.mean()`` and ``.var(bias=True)``.
    (pandas' default ``ignore_na=False`` would also decay the weights across missing values,
    so the result would depend on how many bad readings came in.)
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"ewm: alpha must be in (0, 1], got {alpha}")
    return Kernel("ewm", ewm_fn, 3, ("mean", "var", "zscore"), (float(alpha),))


def tumbling(window_ms: int) -> Kernel:
    """Count, sum, mean, min and max of the key's values in the current tumbling window.

    Windows are ``[k·window_ms, (k + 1)·window_ms)`` (aligned on the epoch); an event's outputs
    cover its window's events up to and including itself. A late event (its window is older
    than the key's current one) is counted in the current window.

    A missing value (NaN, ±inf) leaves the state as it was; its event's outputs are its
    window's values so far (``count`` 0, ``sum`` 0.0, the rest NaN when there is none yet), as
    pandas' ``s.groupby(t // window_ms).expanding(min_periods=0)`` gives.
    """
    window_ms = _positive_int("tumbling", "window_ms", window_ms)
    return Kernel("tumbling", tumbling_fn, 5, WINDOW_OUTPUTS, (float(window_ms),),
                  frozenset({"count"}))


def sliding(window_ms: int, capacity: int = 64) -> Kernel:
    """Count, sum, mean, min and max of the key's values over the last ``window_ms``.

    The window of an event at ``t`` is ``(t - window_ms, t]`` (the event included), like
    ``river.utils.TimeRolling``; ``t`` is the key's latest time so far, so a late event sees
    the window of the latest one (and is counted only if inside it). Each key keeps its last
    ``capacity`` events in a ring buffer: with more events than that inside one window, the
    oldest are left out; choose ``capacity`` >= the busiest key's events per window. Cost:
    O(events in the window) per event; state: ``4 + 2·capacity`` floats per key.

    A missing value (NaN, ±inf) leaves the state as it was (not stored, and its time does not
    move the key's latest); its event's outputs are the values in its window without it
    (``count`` 0, ``sum`` 0.0, the rest NaN when there is none), as pandas'
    ``s.rolling(f"{window_ms}ms", min_periods=0)`` gives.
    """
    window_ms = _positive_int("sliding", "window_ms", window_ms)
    capacity = _positive_int("sliding", "capacity", capacity)
    return Kernel("sliding", sliding_fn, 4 + 2 * capacity, WINDOW_OUTPUTS,
                  (float(window_ms), float(capacity)), frozenset({"count"}))


def rate(window_ms: int, capacity: int = 64) -> Kernel:
    """Events per second of the key over the last ``window_ms``: ``count / (window_ms / 1000)``.

    The window and the ``capacity`` limit are :func:`sliding`'s (the rate saturates at
    ``capacity / window``); values are ignored (an event with a missing value counts).
    Output: ``per_s``.
    """
    window_ms = _positive_int("rate", "window_ms", window_ms)
    capacity = _positive_int("rate", "capacity", capacity)
    return Kernel("rate", rate_fn, 4 + capacity, ("per_s",), (float(window_ms), float(capacity)))


def since_previous() -> Kernel:
    """Milliseconds since the key's previous event (in processing order): output ``ms``.

    NaN for a key's first event (declare the field ``double``; doa encodes NaN as is), and
    negative for an event older than its predecessor. Values are ignored (an event with a
    missing value counts).
    """
    return Kernel("since_previous", since_previous_fn, 2, ("ms",))


def _positive_int(kernel: str, name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{kernel}: {name} must be a positive integer, got {value!r}")
    return int(value)
